//! A request's headers as the request path reads them: hyper's map, or the
//! header lines of a head that [`crate::h1`] read, seen where they lie.
//!
//! Building an `http::HeaderMap` (a name parsed, a value checked and
//! reference-counted, a hash and an insertion per line, two allocations,
//! and dropping it all again) cost about a fifth of a refusal's
//! instructions. A head read by `h1` is checked by httparse, so its lines
//! are looked up where they are: a scan over a few spans, names compared
//! in any case. The client's bytes are never changed. An upstream's
//! answer read by [`crate::fetch`] keeps its header lines the same way.

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, ValueIter};

use crate::fetch::Span;

/// The header lines of a head read by [`crate::h1`], names and values
/// checked by httparse, names as sent. Kept per connection, so that its
/// list is allocated once.
#[derive(Debug, Default)]
pub struct RawHeaders {
    head: Bytes,
    spans: Vec<Span>,
}

impl RawHeaders {
    /// The lines `spans` of `head`.
    pub(crate) fn new(head: Bytes, spans: Vec<Span>) -> RawHeaders {
        RawHeaders { head, spans }
    }

    /// The list of lines, emptied, for a head about to be parsed.
    pub(crate) fn lines(&mut self) -> &mut Vec<Span> {
        self.head = Bytes::new();
        self.spans.clear();
        &mut self.spans
    }

    /// Holds `head`, which the lines listed lie in.
    pub(crate) fn set_head(&mut self, head: Bytes) {
        self.head = head;
    }

    /// Lets the head go (its bytes are shared with the request).
    pub(crate) fn clear(&mut self) {
        self.head = Bytes::new();
        self.spans.clear();
    }

    fn at(&self, (start, end): (u32, u32)) -> &[u8] {
        &self.head[start as usize..end as usize]
    }

    /// The lines named `name` (lowercase), in any case.
    fn named(&self, span: &Span, name: &[u8]) -> bool {
        self.at(span.name).eq_ignore_ascii_case(name)
    }
}

/// A request's headers, either way they were read.
#[derive(Debug, Clone, Copy)]
pub enum Headers<'a> {
    /// Read by hyper.
    Map(&'a HeaderMap),
    /// Read by [`crate::h1`].
    Raw(&'a RawHeaders),
}

impl<'a> From<&'a HeaderMap> for Headers<'a> {
    fn from(map: &'a HeaderMap) -> Headers<'a> {
        Headers::Map(map)
    }
}

impl<'a> Headers<'a> {
    /// The first value of `name`.
    pub fn get(self, name: &HeaderName) -> Option<&'a [u8]> {
        match self {
            Headers::Map(map) => map.get(name).map(HeaderValue::as_bytes),
            Headers::Raw(raw) => {
                let name = name.as_str().as_bytes();
                raw.spans
                    .iter()
                    .find(|s| raw.named(s, name))
                    .map(|s| raw.at(s.value))
            }
        }
    }

    /// Every value of `name`, in order.
    pub fn get_all<'n>(self, name: &'n HeaderName) -> Values<'a, 'n> {
        match self {
            Headers::Map(map) => Values(ValuesOf::Map(map.get_all(name).iter())),
            Headers::Raw(raw) => Values(ValuesOf::Raw {
                raw,
                spans: raw.spans.iter(),
                name: name.as_str().as_bytes(),
            }),
        }
    }

    /// Whether there is a `name` line.
    pub fn contains(self, name: &HeaderName) -> bool {
        self.get(name).is_some()
    }

    /// How many lines there are.
    pub fn len(self) -> usize {
        match self {
            Headers::Map(map) => map.len(),
            Headers::Raw(raw) => raw.spans.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// Every line, in order.
    pub fn iter(self) -> impl Iterator<Item = (Name<'a>, Value<'a>)> {
        let (map, raw) = match self {
            Headers::Map(map) => (Some(map.iter()), None),
            Headers::Raw(raw) => (None, Some(raw.spans.iter().map(move |s| (raw, s)))),
        };
        let from_map = map
            .into_iter()
            .flatten()
            .map(|(name, value)| (Name::Map(name), Value::Map(value)));
        let from_raw = raw
            .into_iter()
            .flatten()
            .map(|(raw, s)| (Name::Raw(raw.at(s.name)), Value::Raw(raw.at(s.value))));
        from_map.chain(from_raw)
    }

    /// The headers as a map (for code that keeps them, such as file
    /// answers): a copy for a head read by `h1`.
    pub fn to_map(self) -> std::borrow::Cow<'a, HeaderMap> {
        match self {
            Headers::Map(map) => std::borrow::Cow::Borrowed(map),
            Headers::Raw(raw) => {
                // Room for the request id a response gets too.
                let mut map = HeaderMap::with_capacity(raw.spans.len() + 1);
                for s in &raw.spans {
                    if let (Ok(name), Ok(value)) = (
                        HeaderName::from_bytes(raw.at(s.name)),
                        HeaderValue::from_maybe_shared(
                            raw.head.slice(s.value.0 as usize..s.value.1 as usize),
                        ),
                    ) {
                        map.append(name, value);
                    }
                }
                std::borrow::Cow::Owned(map)
            }
        }
    }
}

/// A header's name.
#[derive(Debug, Clone, Copy)]
pub enum Name<'a> {
    /// From hyper's map (or one the gateway adds): lowercase.
    Map(&'a HeaderName),
    /// From a head read by `h1`: as sent.
    Raw(&'a [u8]),
}

impl<'a> Name<'a> {
    /// The name (as sent, for a head read by `h1`).
    pub fn as_bytes(self) -> &'a [u8] {
        match self {
            Name::Map(name) => name.as_str().as_bytes(),
            Name::Raw(name) => name,
        }
    }

    /// Whether this is `other`, in any case.
    pub fn is(&self, other: &HeaderName) -> bool {
        match self {
            Name::Map(name) => *name == other,
            Name::Raw(name) => name.eq_ignore_ascii_case(other.as_str().as_bytes()),
        }
    }

    /// The name as hyper's type (lowercased); `None` for a name hyper
    /// would not take.
    pub fn to_header_name(&self) -> Option<HeaderName> {
        match self {
            Name::Map(name) => Some((*name).clone()),
            Name::Raw(name) => HeaderName::from_bytes(name).ok(),
        }
    }
}

/// A header's value.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    /// From hyper's map.
    Map(&'a HeaderValue),
    /// From a head read by `h1`.
    Raw(&'a [u8]),
}

impl<'a> Value<'a> {
    /// The value's bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        match *self {
            Value::Map(value) => value.as_bytes(),
            Value::Raw(value) => value,
        }
    }
}

/// The values of one name.
#[derive(Debug)]
pub struct Values<'a, 'n>(ValuesOf<'a, 'n>);

#[derive(Debug)]
enum ValuesOf<'a, 'n> {
    Map(ValueIter<'a, HeaderValue>),
    Raw {
        raw: &'a RawHeaders,
        /// Those not yet looked at.
        spans: std::slice::Iter<'a, Span>,
        name: &'n [u8],
    },
}

impl<'a> Iterator for Values<'a, '_> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match &mut self.0 {
            ValuesOf::Map(values) => values.next().map(HeaderValue::as_bytes),
            ValuesOf::Raw { raw, spans, name } => {
                spans.find(|s| raw.named(s, name)).map(|s| raw.at(s.value))
            }
        }
    }
}

impl<'a> DoubleEndedIterator for Values<'a, '_> {
    fn next_back(&mut self) -> Option<&'a [u8]> {
        match &mut self.0 {
            ValuesOf::Map(values) => values.next_back().map(HeaderValue::as_bytes),
            ValuesOf::Raw { raw, spans, name } => {
                spans.rfind(|s| raw.named(s, name)).map(|s| raw.at(s.value))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines of `head` as httparse finds them.
    fn raw_of(head: &[u8]) -> RawHeaders {
        let mut slots = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut slots);
        let parsed = request.parse(head);
        assert!(
            matches!(parsed, Ok(httparse::Status::Complete(_))),
            "{parsed:?}"
        );
        let spans = request
            .headers
            .iter()
            .map(|h| Span {
                name: crate::fetch::span_of(head, h.name.as_bytes()),
                value: crate::fetch::span_of(head, h.value),
            })
            .collect();
        RawHeaders::new(Bytes::copy_from_slice(head), spans)
    }

    proptest::proptest! {
        /// Whatever the lines and the letter case of their names, the lines
        /// read where they lie answer every lookup as hyper's map of the
        /// same lines does.
        #[test]
        fn lines_answer_as_the_map_of_the_same_lines(
            lines in proptest::collection::vec(
                ("(host|accept|x-forwarded-for|set-cookie|x-a|connection)", "[ -~]{0,8}", proptest::bool::ANY),
                0..10,
            ),
        ) {
            let mut head = b"GET / HTTP/1.1\r\n".to_vec();
            let mut map = HeaderMap::new();
            for (name, value, upper) in &lines {
                let sent = if *upper { name.to_ascii_uppercase() } else { name.clone() };
                head.extend_from_slice(format!("{sent}: {value}\r\n").as_bytes());
                // httparse gives the value without its surrounding spaces.
                let value = HeaderValue::from_str(value.trim_matches(' ')).expect("visible ASCII");
                map.append(HeaderName::from_bytes(name.as_bytes()).expect("name"), value);
            }
            head.extend_from_slice(b"\r\n");
            let raw = raw_of(&head);
            let (ours, theirs) = (Headers::Raw(&raw), Headers::Map(&map));
            proptest::prop_assert_eq!(ours.len(), theirs.len());
            for name in ["host", "accept", "x-forwarded-for", "set-cookie", "x-a", "connection", "x-b"] {
                let name = HeaderName::from_static(name);
                proptest::prop_assert_eq!(ours.get(&name), theirs.get(&name));
                proptest::prop_assert_eq!(ours.get_all(&name).collect::<Vec<_>>(), theirs.get_all(&name).collect::<Vec<_>>());
                proptest::prop_assert_eq!(ours.get_all(&name).rev().collect::<Vec<_>>(), theirs.get_all(&name).rev().collect::<Vec<_>>());
            }
            proptest::prop_assert_eq!(&*ours.to_map(), &map);
        }
    }
}
