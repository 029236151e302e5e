#!/usr/bin/env python3
"""Writes seed inputs for the fuzz targets into corpus/<target>/seed-*, from the
project's own test tables: tests/fixtures/corpus/targets.txt (paths), the CASES of
src/client_ip.rs (client_ip), referer_table in src/host.rs (referer), and
config/edgeguard.toml plus the rulebook snippets of tests/rulebook.rs and the
READMEs (rulebook).
Run from fuzz/ before the first `cargo fuzz run`; `cargo fuzz cmin` keeps what counts."""

import hashlib
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = pathlib.Path(__file__).resolve().parent / "corpus"


def write(target, data):
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
    (folder / name).write_bytes(data)


def rust_str(literal):
    """A Rust "..." literal's value."""
    body = literal[1:-1]
    body = re.sub(r"\\\n\s*", "", body)  # line continuation
    simple = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}

    def one(m):
        e = m.group(1)
        if e in simple:
            return simple[e]
        if e.startswith("x"):
            return chr(int(e[1:], 16))
        return chr(int(e[2:-1], 16))

    return re.sub(r"\\(x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.)", one, body, flags=re.S)


def expand(written):
    """targets.txt notation: \\x{NN} is a byte, {{N*text}} repeats text N times."""
    out = bytearray()
    rest = written
    while rest:
        m = re.match(r"\{\{(\d+)\*(.*?)\}\}", rest)
        if m:
            out += m.group(2).encode() * int(m.group(1))
            rest = rest[m.end():]
            continue
        m = re.match(r"\\x\{([0-9a-fA-F]{2})\}", rest)
        if m:
            out.append(int(m.group(1), 16))
            rest = rest[m.end():]
            continue
        out += rest[0].encode()
        rest = rest[1:]
    return bytes(out)


def paths():
    for line in (ROOT / "tests/fixtures/corpus/targets.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        target = expand(line.split()[0])
        write("canonical_path", target.split(b"?", 1)[0][:512])


STRING = r'"(?:[^"\\]|\\.)*"'


def client_ips():
    text = (ROOT / "src/client_ip.rs").read_text()
    modes = {"XFF": 0, "FWD": 1, "REAL": 2, "CF": 2}
    peers = ["10.0.0.1", "127.0.0.1", "192.168.1.1", "::ffff:10.1.2.3",
             "2001:db8:ffff::1", "203.0.113.9", "2001:db8::9", "::ffff:203.0.113.9"]
    row = re.compile(r'\(' + STRING + r', (' + STRING + r'), (XFF|FWD|REAL|CF), &\[(.*?)\], ' + STRING + r'\)')
    for m in row.finditer(text):
        peer = rust_str(m.group(1))
        peer = peers.index(peer) if peer in peers else 0
        values = [rust_str(v) for v in re.findall(STRING, m.group(3))]
        data = bytes([modes[m.group(2)], peer]) + "\n".join(values).encode()
        write("client_ip", data)


def referers():
    text = (ROOT / "src/host.rs").read_text()
    table = text[text.index("fn referer_table"):text.index("fn referer_instances")]
    for m in re.finditer(r'\((' + STRING + r'), (?:Ok|M\b|NONE)', table):
        write("referer", b"\x01" + rust_str(m.group(1)).encode())
    write("referer", b"\x02http://example.com/\nhttps://evil.test/")
    write("referer", b"\x00")


def rulebooks():
    write("rulebook", (ROOT / "config/edgeguard.toml").read_bytes())
    for doc in ["README.md", "geoip/README.md"]:
        for m in re.finditer(r"```toml[^\n]*\n(.*?)```", (ROOT / doc).read_text(), re.S):
            write("rulebook", m.group(1).encode())
    text = (ROOT / "tests/rulebook.rs").read_text()
    for m in re.finditer(r'r#"(.*?)"#', text, re.S):
        write("rulebook", m.group(1).encode())
    for m in re.finditer(STRING, re.sub(r'r#".*?"#', "", text, flags=re.S)):
        value = rust_str(m.group(0))
        if "\n" in value and ("[" in value or "=" in value):
            write("rulebook", value.encode())


paths()
client_ips()
referers()
rulebooks()
for target in sorted(CORPUS.iterdir()):
    print(target.name, len(list(target.iterdir())))
