//! Bearer tokens for `require` rules: JWTs signed with JWKS keys (ES256,
//! RS256, EdDSA) or an HS256 secret, with expiry, issuer and audience checks,
//! and the roles claim as a string or an array.

use edgeguard::auth::{Auth, AuthError, KeySource};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use crate::common::repo;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(repo().join("tests/fixtures/auth").join(name)).expect("fixture")
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn jwks_auth(issuer: Option<&str>, audience: Option<&str>) -> Auth {
    let jwks = String::from_utf8(fixture("jwks.json")).expect("utf-8");
    Auth::new(
        KeySource::Jwks(&jwks),
        issuer.map(str::to_owned),
        audience.map(str::to_owned),
        "roles".to_owned(),
    )
    .expect("keys load")
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(&fixture("es256-private.pem")),
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&fixture("rs256-private.pem")),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&fixture("eddsa-private.pem")),
        other => panic!("no fixture key for {other:?}"),
    }
    .expect("private key");
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, claims, &key).expect("sign")
}

#[test]
fn tokens_signed_by_each_jwks_key_verify_and_give_their_roles() {
    let auth = jwks_auth(None, None);
    let claims = json!({ "sub": "u1", "exp": now() + 600, "roles": ["admin", "ops"] });
    for (alg, kid) in [
        (Algorithm::ES256, "test-es256"),
        (Algorithm::RS256, "test-rs256"),
        (Algorithm::EdDSA, "test-eddsa"),
    ] {
        let token = sign(alg, Some(kid), &claims);
        assert_eq!(
            auth.verify(&token).expect("verifies"),
            ["admin", "ops"],
            "{alg:?}"
        );
        // Without a kid, the key is found by algorithm.
        let token = sign(alg, None, &claims);
        assert_eq!(
            auth.verify(&token).expect("verifies"),
            ["admin", "ops"],
            "{alg:?}"
        );
    }
}

#[test]
fn roles_claim_may_be_a_string_or_absent() {
    let auth = jwks_auth(None, None);
    let one = sign(
        Algorithm::ES256,
        None,
        &json!({ "exp": now() + 60, "roles": "viewer" }),
    );
    assert_eq!(auth.verify(&one).expect("verifies"), ["viewer"]);
    let none = sign(Algorithm::ES256, None, &json!({ "exp": now() + 60 }));
    assert!(auth.verify(&none).expect("verifies").is_empty());
    let bad = sign(
        Algorithm::ES256,
        None,
        &json!({ "exp": now() + 60, "roles": 7 }),
    );
    assert!(matches!(auth.verify(&bad), Err(AuthError::Roles(_))));
}

#[test]
fn expired_tampered_and_foreign_tokens_are_invalid() {
    let auth = jwks_auth(None, None);
    let expired = sign(
        Algorithm::ES256,
        None,
        &json!({ "exp": now() - 3600, "roles": ["admin"] }),
    );
    assert!(auth.verify(&expired).is_err(), "expired");
    let no_exp = sign(Algorithm::ES256, None, &json!({ "roles": ["admin"] }));
    assert!(auth.verify(&no_exp).is_err(), "no exp");
    let good = sign(
        Algorithm::ES256,
        None,
        &json!({ "exp": now() + 60, "roles": ["viewer"] }),
    );
    let mut parts: Vec<&str> = good.split('.').collect();
    let forged_claims = base64_url(&json!({ "exp": now() + 60, "roles": ["admin"] }).to_string());
    parts[1] = &forged_claims;
    assert!(auth.verify(&parts.join(".")).is_err(), "tampered");
    let unknown_kid = sign(
        Algorithm::ES256,
        Some("nope"),
        &json!({ "exp": now() + 60 }),
    );
    assert!(matches!(
        auth.verify(&unknown_kid),
        Err(AuthError::UnknownKey(_))
    ));
    for garbage in ["", "a.b", "not a token", "a.b.c"] {
        assert!(auth.verify(garbage).is_err(), "{garbage:?}");
    }
}

#[test]
fn alg_none_and_hs256_with_a_public_key_are_refused() {
    let auth = jwks_auth(None, None);
    let header = base64_url(r#"{"alg":"none","typ":"JWT"}"#);
    let claims = base64_url(&json!({ "exp": now() + 60, "roles": ["admin"] }).to_string());
    assert!(
        auth.verify(&format!("{header}.{claims}.")).is_err(),
        "alg none"
    );
    // The classic confusion attack: HS256 keyed with the published public key.
    let jwks = String::from_utf8(fixture("jwks.json")).expect("utf-8");
    let token = encode(
        &Header::new(Algorithm::HS256),
        &json!({ "exp": now() + 60, "roles": ["admin"] }),
        &EncodingKey::from_secret(jwks.as_bytes()).expect("secret key"),
    )
    .expect("sign");
    assert!(auth.verify(&token).is_err(), "HS256 against JWKS keys");
}

#[test]
fn issuer_and_audience_are_required_when_configured() {
    let auth = jwks_auth(Some("https://id.example.com/"), Some("web"));
    let exp = now() + 60;
    let ok = json!({ "exp": exp, "iss": "https://id.example.com/", "aud": "web", "roles": ["a"] });
    assert_eq!(
        auth.verify(&sign(Algorithm::ES256, None, &ok))
            .expect("verifies"),
        ["a"]
    );
    let cases = [
        json!({ "exp": exp, "iss": "https://evil.example/", "aud": "web" }),
        json!({ "exp": exp, "iss": "https://id.example.com/", "aud": "api" }),
        json!({ "exp": exp, "aud": "web" }),
        json!({ "exp": exp, "iss": "https://id.example.com/" }),
    ];
    for claims in cases {
        assert!(
            auth.verify(&sign(Algorithm::ES256, None, &claims)).is_err(),
            "{claims}"
        );
    }
}

#[test]
fn hs256_secret_tokens_verify() {
    let auth = Auth::new(
        KeySource::Hs256(b"s3cret-s3cret-s3cret"),
        None,
        None,
        "groups".to_owned(),
    )
    .expect("secret loads");
    let claims = json!({ "exp": now() + 60, "groups": ["editors"] });
    let token = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(b"s3cret-s3cret-s3cret").expect("secret key"),
    )
    .expect("sign");
    assert_eq!(auth.verify(&token).expect("verifies"), ["editors"]);
    let wrong = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(b"another-secret").expect("secret key"),
    )
    .expect("sign");
    assert!(auth.verify(&wrong).is_err());
}

#[test]
fn a_jwks_without_usable_keys_is_refused() {
    let err = Auth::new(
        KeySource::Jwks(r#"{"keys":[]}"#),
        None,
        None,
        "roles".into(),
    )
    .expect_err("no keys");
    assert_eq!(
        err.to_string(),
        "the JWKS holds no RS256, ES256 or EdDSA key"
    );
    let err = Auth::new(KeySource::Jwks("{"), None, None, "roles".into()).expect_err("bad json");
    assert!(err.to_string().starts_with("invalid JWKS: "), "{err}");
}

fn base64_url(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &x)| n | u32::from(x) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}
