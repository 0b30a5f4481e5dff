//! Whether two JSON texts are one value with the members of its objects in other orders:
//! how a re-sent event is told from another event under the same id when a sender's
//! serializer orders `details` otherwise.
//!
//! One pass over each text, no numbers parsed: a scalar is compared as written (a number
//! digit for digit, a string with its escapes), so nothing that differs in value is taken
//! for the same. Keys are compared by the names they spell (escapes decoded), as every
//! reader sees them, so a member named twice is caught however each is written. Both texts are valid JSON already (an event parsed, or the store's own
//! record); anything else is simply not the same.

use std::borrow::Cow;
use std::collections::BTreeMap;

/// Objects and arrays nested deeper than this are not compared: such texts are not the
/// same unless their bytes are. Bounds the recursion, whatever a client sends. The members
/// of an event are the first level, so every `details` the parser accepts is followed.
const MAX_DEPTH: usize = crate::event::MAX_NESTING + 1;

/// Whether the JSON objects `a` and `b`, each without its top-level member `skip`, are one
/// value up to the order of object members, at every depth. An object that names a member
/// twice is never the same as anything (which of the two counts is up to the reader).
pub(crate) fn same_up_to_order(a: &str, b: &str, skip: &str) -> bool {
    let object = |text| match Scan::whole(text)? {
        Shape::Object(mut members) => {
            members.remove(skip);
            Some(members)
        }
        _ => None,
    };
    matches!((object(a), object(b)), (Some(a), Some(b)) if a == b)
}

/// A JSON value as written, but for the order of its objects' members (keyed by the names
/// they spell).
#[derive(Debug, PartialEq, Eq)]
enum Shape<'a> {
    Object(BTreeMap<Cow<'a, str>, Shape<'a>>),
    Array(Vec<Shape<'a>>),
    Literal(&'a str),
}

struct Scan<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scan<'a> {
    /// The shape of `text`, one value and nothing after it.
    fn whole(text: &'a str) -> Option<Shape<'a>> {
        let mut scan = Scan { text, at: 0 };
        let shape = scan.value(0)?;
        scan.peek().is_none().then_some(shape)
    }

    /// The next byte that is not white space.
    fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.text.as_bytes().get(self.at) {
            if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                return Some(b);
            }
            self.at += 1;
        }
        None
    }

    /// Steps over `expected`, the next byte that is not white space.
    fn eat(&mut self, expected: u8) -> Option<()> {
        (self.peek()? == expected).then(|| self.at += 1)
    }

    fn value(&mut self, depth: usize) -> Option<Shape<'a>> {
        match self.peek()? {
            b'{' if depth < MAX_DEPTH => {
                self.at += 1;
                let mut members = BTreeMap::new();
                if self.eat(b'}').is_some() {
                    return Some(Shape::Object(members));
                }
                loop {
                    let key = self.key()?;
                    self.eat(b':')?;
                    if members.insert(key, self.value(depth + 1)?).is_some() {
                        return None;
                    }
                    if self.eat(b'}').is_some() {
                        return Some(Shape::Object(members));
                    }
                    self.eat(b',')?;
                }
            }
            b'[' if depth < MAX_DEPTH => {
                self.at += 1;
                let mut items = Vec::new();
                if self.eat(b']').is_some() {
                    return Some(Shape::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    if self.eat(b']').is_some() {
                        return Some(Shape::Array(items));
                    }
                    self.eat(b',')?;
                }
            }
            b'{' | b'[' => None,
            b'"' => self.string().map(Shape::Literal),
            _ => {
                let start = self.at;
                while let Some(&b) = self.text.as_bytes().get(self.at) {
                    if matches!(b, b',' | b']' | b'}' | b':' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    self.at += 1;
                }
                (self.at > start)
                    .then(|| self.text.get(start..self.at))
                    .flatten()
                    .map(Shape::Literal)
            }
        }
    }

    /// The name the key starting at the next byte that is not white space spells: `"r"`
    /// and `"\u0072"` are one name.
    fn key(&mut self) -> Option<Cow<'a, str>> {
        let text = self.string()?;
        if text.contains('\\') {
            serde_json::from_str::<String>(text).ok().map(Cow::Owned)
        } else {
            text.get(1..text.len() - 1).map(Cow::Borrowed)
        }
    }

    /// The string starting at the next byte that is not white space, quotes included.
    fn string(&mut self) -> Option<&'a str> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.at;
        self.at += 1;
        loop {
            match self.text.as_bytes().get(self.at)? {
                b'\\' => self.at += 2,
                b'"' => {
                    self.at += 1;
                    return self.text.get(start..self.at);
                }
                _ => self.at += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reordered_members_are_the_same_and_nothing_else_is() {
        let same = [
            (
                r#"{"a":1,"b":[{"x":1,"y":"z"}]}"#,
                r#"{"b":[{"y":"z","x":1}],"a":1}"#,
            ),
            (r#"{"a": 1 ,"b" : [ ] }"#, r#"{"b":[],"a":1}"#),
            (r#"{"time":"t1","a":{}}"#, r#"{"a":{},"time":"t2"}"#),
            (r#"{"s":"a\"b,}","n":null}"#, r#"{"n":null,"s":"a\"b,}"}"#),
            (r#"{"A":1,"b":2}"#, r#"{"b":2,"\u0041":1}"#),
            (r#"{"\u0074ime":"t1","a":1}"#, r#"{"a":1,"time":"t2"}"#),
        ];
        for (a, b) in same {
            assert!(same_up_to_order(a, b, "time"), "{a} {b}");
        }
        let other = [
            (
                r#"{"n":18446744073709551616}"#,
                r#"{"n":18446744073709551617}"#,
            ),
            (r#"{"n":0.1}"#, r#"{"n":0.10000000000000000001}"#),
            (r#"{"n":-0.0}"#, r#"{"n":0.0}"#),
            (r#"{"n":1.0}"#, r#"{"n":1}"#),
            (r#"{"s":"A"}"#, r#"{"s":"\u0041"}"#),
            (r#"{"a":[1,2]}"#, r#"{"a":[2,1]}"#),
            (r#"{"a":1}"#, r#"{"a":1,"b":null}"#),
            (
                r#"{"r":"user","r":"admin"}"#,
                r#"{"r":"guest","r":"admin"}"#,
            ),
            (r#"{"r":"admin","r":"admin"}"#, r#"{"r":"admin"}"#),
            (
                r#"{"role":"user","\u0072ole":"admin"}"#,
                r#"{"\u0072ole":"admin","role":"user"}"#,
            ),
            (r#"{"a":{"k":1,"\u006b":2}}"#, r#"{"a":{"\u006b":2,"k":1}}"#),
            (r#"{"a":1}"#, r#"{"a":1}x"#),
            (r#"{"a":1}"#, r#"{"a":1"#),
            (r#"{"a":1}"#, r#"[{"a":1}]"#),
        ];
        for (a, b) in other {
            assert!(!same_up_to_order(a, b, "time"), "{a} {b}");
            assert!(!same_up_to_order(b, a, "time"), "{b} {a}");
        }
    }

    /// Nesting past the limit is not compared, and costs no deeper recursion: a client's
    /// event nested a million deep is answered on a quarter of a thread's usual stack.
    #[test]
    fn deep_nesting_is_refused_not_followed() {
        let nested =
            |depth: usize| format!(r#"{{"a":{}1{}}}"#, "[".repeat(depth), "]".repeat(depth));
        assert!(same_up_to_order(&nested(50), &nested(50), "time"));
        let deep = nested(1_000_000);
        let answer = std::thread::Builder::new()
            .stack_size(512 * 1024)
            .spawn(move || same_up_to_order(&deep, &deep, "time"))
            .unwrap()
            .join()
            .unwrap();
        assert!(!answer);
    }
}
