//! A reader for the Python literals the original system stored its collections in
//! (`str(dict)` output): dicts, lists, tuples, strings in either quote, numbers, `True`,
//! `False` and `None`. It reads data only; nothing is evaluated.

use serde_json::{Map, Number, Value};

/// Deepest nesting accepted, so hostile input cannot exhaust the stack.
const MAX_DEPTH: usize = 64;

pub(crate) fn parse(text: &str) -> Result<Value, String> {
    let mut p = Parser {
        chars: text.char_indices().peekable(),
        text,
    };
    let value = p.value(0)?;
    p.skip_ws();
    match p.chars.peek() {
        None => Ok(value),
        Some(&(at, c)) => Err(format!("unexpected {c:?} at byte {at} after the value")),
    }
}

struct Parser<'a> {
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
    text: &'a str,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while matches!(self.chars.peek(), Some((_, c)) if c.is_whitespace()) {
            self.chars.next();
        }
    }

    fn end(&self) -> String {
        format!("unexpected end of text at byte {}", self.text.len())
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH} levels"));
        }
        self.skip_ws();
        let Some(&(at, c)) = self.chars.peek() else {
            return Err(self.end());
        };
        match c {
            '{' => self.dict(depth),
            '[' => self.list(']', depth),
            '(' => self.list(')', depth),
            '\'' | '"' => self.string().map(Value::String),
            '-' | '+' | '0'..='9' | '.' => self.number(),
            c if c.is_ascii_alphabetic() => {
                let word = self.word();
                match word.as_str() {
                    "True" => Ok(Value::Bool(true)),
                    "False" => Ok(Value::Bool(false)),
                    "None" => Ok(Value::Null),
                    other => Err(format!("unexpected name `{other}` at byte {at}")),
                }
            }
            other => Err(format!("unexpected {other:?} at byte {at}")),
        }
    }

    fn word(&mut self) -> String {
        let mut word = String::new();
        while let Some(&(_, c)) = self.chars.peek() {
            if !(c.is_ascii_alphanumeric() || c == '_') {
                break;
            }
            word.push(c);
            self.chars.next();
        }
        word
    }

    /// Consumes `close` or a comma; a trailing comma before `close` is allowed, as in Python.
    fn separator(&mut self, close: char) -> Result<bool, String> {
        self.skip_ws();
        match self.chars.next() {
            Some((_, c)) if c == close => Ok(true),
            Some((_, ',')) => {
                self.skip_ws();
                if matches!(self.chars.peek(), Some(&(_, c)) if c == close) {
                    self.chars.next();
                    return Ok(true);
                }
                Ok(false)
            }
            Some((at, c)) => Err(format!(
                "expected ',' or {close:?} at byte {at}, found {c:?}"
            )),
            None => Err(self.end()),
        }
    }

    fn dict(&mut self, depth: usize) -> Result<Value, String> {
        self.chars.next();
        let mut map = Map::new();
        self.skip_ws();
        if matches!(self.chars.peek(), Some((_, '}'))) {
            self.chars.next();
            return Ok(Value::Object(map));
        }
        loop {
            self.skip_ws();
            let key = match self.value(depth + 1)? {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                other => return Err(format!("a dict key must be a string, found {other}")),
            };
            self.skip_ws();
            match self.chars.next() {
                Some((_, ':')) => {}
                Some((at, c)) => return Err(format!("expected ':' at byte {at}, found {c:?}")),
                None => return Err(self.end()),
            }
            let value = self.value(depth + 1)?;
            map.insert(key, value);
            if self.separator('}')? {
                return Ok(Value::Object(map));
            }
        }
    }

    fn list(&mut self, close: char, depth: usize) -> Result<Value, String> {
        self.chars.next();
        let mut items = Vec::new();
        self.skip_ws();
        if matches!(self.chars.peek(), Some(&(_, c)) if c == close) {
            self.chars.next();
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value(depth + 1)?);
            if self.separator(close)? {
                return Ok(Value::Array(items));
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let (start, quote) = self.chars.next().ok_or_else(|| self.end())?;
        let mut out = String::new();
        loop {
            let (at, c) = self
                .chars
                .next()
                .ok_or_else(|| format!("string opened at byte {start} is never closed"))?;
            match c {
                c if c == quote => return Ok(out),
                '\n' => {
                    return Err(format!(
                        "string opened at byte {start} breaks a line at byte {at}"
                    ));
                }
                '\\' => out.push(self.escape(at)?),
                c => out.push(c),
            }
        }
    }

    fn escape(&mut self, at: usize) -> Result<char, String> {
        let (_, c) = self.chars.next().ok_or_else(|| self.end())?;
        Ok(match c {
            '\\' => '\\',
            '\'' => '\'',
            '"' => '"',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            '0' => '\0',
            'x' => self.hex(2, at)?,
            'u' => self.hex(4, at)?,
            'U' => self.hex(8, at)?,
            other => return Err(format!("unknown escape \\{other} at byte {at}")),
        })
    }

    fn hex(&mut self, digits: usize, at: usize) -> Result<char, String> {
        let mut code = 0u32;
        for _ in 0..digits {
            let (_, c) = self.chars.next().ok_or_else(|| self.end())?;
            let d = c
                .to_digit(16)
                .ok_or_else(|| format!("bad hex digit {c:?} in the escape at byte {at}"))?;
            code = code * 16 + d;
        }
        char::from_u32(code).ok_or_else(|| format!("escape at byte {at} is not a character"))
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.chars.peek().map(|&(at, _)| at).unwrap_or(0);
        let mut literal = String::new();
        while let Some(&(_, c)) = self.chars.peek() {
            if !(c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E' | '_')) {
                break;
            }
            if c != '_' {
                literal.push(c);
            }
            self.chars.next();
        }
        if let Ok(n) = literal.parse::<i64>() {
            return Ok(Value::Number(n.into()));
        }
        literal
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("`{literal}` at byte {start} is not a number"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_what_python_str_writes() {
        let text = r#"{'a': {'db': 'core', "t": 'it\'s', 'n': 3, 'f': -1.5, 'ok': True, 'no': False, 'x': None}, 'l': [1, (2, 3),], 'e': {}}"#;
        assert_eq!(
            parse(text),
            Ok(
                json!({"a": {"db": "core", "t": "it's", "n": 3, "f": -1.5, "ok": true, "no": false, "x": null}, "l": [1, [2, 3]], "e": {}})
            )
        );
    }

    #[test]
    fn reads_escapes() {
        assert_eq!(parse(r"'\xe9\u00e9\n\\'"), Ok(json!("éé\n\\")));
    }

    #[test]
    fn says_where_it_broke() {
        assert_eq!(
            parse("{'a': 1"),
            Err("unexpected end of text at byte 7".to_owned())
        );
        assert_eq!(
            parse("{'a' 1}"),
            Err("expected ':' at byte 5, found '1'".to_owned())
        );
        assert_eq!(
            parse("{'a': os.system}"),
            Err("unexpected name `os` at byte 6".to_owned())
        );
        assert_eq!(
            parse("'abc"),
            Err("string opened at byte 0 is never closed".to_owned())
        );
        assert_eq!(
            parse("{} x"),
            Err("unexpected 'x' at byte 3 after the value".to_owned())
        );
    }

    #[test]
    fn refuses_deep_nesting() {
        let deep = "[".repeat(1000);
        assert_eq!(
            parse(&deep),
            Err(format!("nested deeper than {MAX_DEPTH} levels"))
        );
    }
}
