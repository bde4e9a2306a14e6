//! Label selectors and field selectors, with Kubernetes' syntax, semantics and error messages
//! (`k8s.io/apimachinery/pkg/labels` and `pkg/fields`).
//!
//! - [`LabelSelector::parse`] is `labels.Parse`: a lexer and a recursive-descent parser for
//!   `a=b,c!=d,e in (f,g),h notin (i),j,!k,l>1,m<2`, with the key and value validation of
//!   `labels.NewRequirement`. Requirements come out sorted by key, values of `in`/`notin`
//!   de-duplicated and sorted, as upstream.
//! - [`LabelSelector::from_meta`] is `metav1.LabelSelectorAsSelector`, [`LabelSelector::from_map`]
//!   is `labels.SelectorFromSet` (no validation; an empty map selects everything).
//! - [`FieldSelector::parse`] is `fields.ParseSelector`: `,`-separated `field=value`,
//!   `field==value`, `field!=value` terms, values escaped with `\` (`\,`, `\=`, `\\`).
//!
//! Every error message is the one the Kubernetes API server puts into the `message` of its HTTP
//! 400 `Status` (the API server wraps nothing around them), e.g.
//! `unable to parse requirement: found '', expected: in, notin, =, ==, !=, gt, lt`.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as MetaLabelSelector;

use crate::field::{aggregate_message, BadValue, Error as FieldError, Path};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operator {
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

impl Operator {
    /// The `selection.Operator` string (`"="`, `"in"`, `"!"`, `"gt"`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => "in",
            Operator::NotIn => "notin",
            Operator::Exists => "exists",
            Operator::DoesNotExist => "!",
            Operator::GreaterThan => "gt",
            Operator::LessThan => "lt",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    pub values: Vec<String>,
}

impl Requirement {
    /// `labels.NewRequirement`: validates the key, the number of values for the operator and
    /// every value. `path` is the `field.Path` option (`None` = no path, as in `labels.Parse`).
    pub fn new(
        key: &str,
        operator: Operator,
        values: Vec<String>,
        path: Option<&Path>,
    ) -> Result<Self, SelectorError> {
        let mut errs = Vec::new();
        let child = |name: &str| match path {
            Some(p) => p.child(name),
            None => Path::new(name),
        };
        if let Some(e) = validate_label_key(key, &child("key")) {
            errs.push(e);
        }
        let value_path = child("values");
        match operator {
            Operator::In | Operator::NotIn => {
                if values.is_empty() {
                    errs.push(FieldError::invalid(
                        &value_path,
                        go_string_slice(&values),
                        "for 'in', 'notin' operators, values set can't be empty",
                    ));
                }
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals => {
                if values.len() != 1 {
                    errs.push(FieldError::invalid(
                        &value_path,
                        go_string_slice(&values),
                        "exact-match compatibility requires one single value",
                    ));
                }
            }
            Operator::Exists | Operator::DoesNotExist => {
                if !values.is_empty() {
                    errs.push(FieldError::invalid(
                        &value_path,
                        go_string_slice(&values),
                        "values set must be empty for exists and does not exist",
                    ));
                }
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(FieldError::invalid(
                        &value_path,
                        go_string_slice(&values),
                        "for 'Gt', 'Lt' operators, exactly one value is required",
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(FieldError::invalid(
                            &value_path.index(i),
                            v.as_str(),
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        ));
                    }
                }
            }
        }
        for (i, v) in values.iter().enumerate() {
            if let Some(e) = validate_label_value(key, v, &value_path.index(i)) {
                errs.push(e);
            }
        }
        if !errs.is_empty() {
            return Err(SelectorError(aggregate_message(&errs)));
        }
        Ok(Requirement {
            key: key.to_string(),
            operator,
            values,
        })
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => labels
                .get(&self.key)
                .is_some_and(|v| self.values.contains(v)),
            Operator::NotIn | Operator::NotEquals => labels
                .get(&self.key)
                .is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => labels.contains_key(&self.key),
            Operator::DoesNotExist => !labels.contains_key(&self.key),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(Ok(have)) = labels.get(&self.key).map(|v| v.parse::<i64>()) else {
                    return false;
                };
                let [want] = self.values.as_slice() else {
                    return false;
                };
                let Ok(want) = want.parse::<i64>() else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    /// Go's `Requirement.String()`: `!k`, `k`, `k=v`, `k==v`, `k!=v`, `k in (a,b)`,
    /// `k notin (a,b)`, `k>1`, `k<1`; several values are printed sorted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let (op, parens) = match self.operator {
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
            Operator::Equals => ("=", false),
            Operator::DoubleEquals => ("==", false),
            Operator::NotEquals => ("!=", false),
            Operator::In => (" in ", true),
            Operator::NotIn => (" notin ", true),
            Operator::GreaterThan => (">", false),
            Operator::LessThan => ("<", false),
        };
        f.write_str(op)?;
        if parens {
            f.write_str("(")?;
        }
        if self.values.len() == 1 {
            f.write_str(&self.values[0])?;
        } else {
            let mut sorted: Vec<&str> = self.values.iter().map(String::as_str).collect();
            sorted.sort_unstable();
            f.write_str(&sorted.join(","))?;
        }
        if parens {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A parsed label selector. The empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub requirements: Vec<Requirement>,
}

/// A selector that could not be parsed; the message is Kubernetes' own.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(pub String);

impl LabelSelector {
    /// Parse the string syntax (`a=b,c!=d,e in (f,g),!h,i`).
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut parser = Parser::new(s);
        let mut requirements = parser.parse()?;
        // Go sorts with sort.Sort(ByKey); for the handful of requirements a selector has that is
        // an insertion sort, i.e. stable.
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements })
    }

    /// From a `metav1.LabelSelector` (matchLabels + matchExpressions), as `LabelSelectorAsSelector`.
    /// An empty one selects everything.
    pub fn from_meta(sel: &MetaLabelSelector) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            requirements.push(Requirement::new(
                k,
                Operator::Equals,
                vec![v.clone()],
                None,
            )?);
        }
        for expr in sel.match_expressions.iter().flatten() {
            let op = match expr.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(SelectorError(format!(
                        "{} is not a valid label selector operator",
                        crate::field::go_quote(other)
                    )))
                }
            };
            let values = expr.values.clone().unwrap_or_default();
            requirements.push(Requirement::new(&expr.key, op, values, None)?);
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements })
    }

    /// Every `key=value` of `map` must match (a Service's or ReplicaSet's `spec.selector` map).
    /// Not validated; an empty map gives the empty selector (which selects everything — callers
    /// for whom an empty selector means "nothing", like Services, check [`Self::is_empty`]).
    pub fn from_map(map: &BTreeMap<String, String>) -> Self {
        LabelSelector {
            requirements: map
                .iter()
                .map(|(k, v)| Requirement {
                    key: k.clone(),
                    operator: Operator::Equals,
                    values: vec![v.clone()],
                })
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Go's `RequiresExactMatch`: the value `label` must have (`=`, `==`, or `in` with one value).
    pub fn exact(&self, label: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == label)?;
        match (&r.operator, r.values.as_slice()) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, [v]) => Some(v),
            _ => None,
        }
    }
}

impl fmt::Display for LabelSelector {
    /// The canonical string form, as Go's `Selector.String()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Label selector lexer and parser (labels/selector.go).

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    Error,
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn literal_token(s: &[u8]) -> Option<Token> {
    Some(match s {
        b")" => Token::ClosedPar,
        b"," => Token::Comma,
        b"!" => Token::DoesNotExist,
        b"==" => Token::DoubleEquals,
        b"=" => Token::Equals,
        b">" => Token::GreaterThan,
        b"in" => Token::In,
        b"<" => Token::LessThan,
        b"!=" => Token::NotEquals,
        b"notin" => Token::NotIn,
        b"(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special_symbol(c: u8) -> bool {
    matches!(c, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    /// The next byte, or 0 at the end (as Go's lexer, a NUL byte also ends the input).
    fn read(&mut self) -> u8 {
        match self.s.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                b
            }
            None => 0,
        }
    }

    /// Undo the last `read`. Only called right after a read that returned a byte.
    fn unread(&mut self) {
        self.pos -= 1;
    }

    fn scan_id_or_keyword(&mut self) -> (Token, String) {
        let mut buf = Vec::new();
        loop {
            let c = self.read();
            if c == 0 {
                break;
            }
            if is_special_symbol(c) || is_whitespace(c) {
                self.unread();
                break;
            }
            buf.push(c);
        }
        let lit = String::from_utf8_lossy(&buf).into_owned();
        (literal_token(&buf).unwrap_or(Token::Identifier), lit)
    }

    fn scan_special_symbol(&mut self) -> (Token, String) {
        let mut last: Option<(Token, String)> = None;
        let mut buf = Vec::new();
        loop {
            let c = self.read();
            if c == 0 {
                break;
            }
            if !is_special_symbol(c) {
                self.unread();
                break;
            }
            buf.push(c);
            if let Some(t) = literal_token(&buf) {
                last = Some((t, String::from_utf8_lossy(&buf).into_owned()));
            } else if last.is_some() {
                self.unread();
                break;
            }
        }
        last.unwrap_or_else(|| {
            (
                Token::Error,
                format!(
                    "error expected: keyword found '{}'",
                    String::from_utf8_lossy(&buf)
                ),
            )
        })
    }

    fn lex(&mut self) -> (Token, String) {
        let mut c = self.read();
        while is_whitespace(c) {
            c = self.read();
        }
        if c == 0 {
            return (Token::EndOfString, String::new());
        }
        self.unread();
        if is_special_symbol(c) {
            self.scan_special_symbol()
        } else {
            self.scan_id_or_keyword()
        }
    }
}

/// Whether `in`/`notin` are keywords (after a key) or plain identifiers (values, keys).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

struct Parser {
    items: Vec<(Token, String)>,
    position: usize,
}

fn err<T>(msg: String) -> Result<T, SelectorError> {
    Err(SelectorError(msg))
}

impl Parser {
    fn new(s: &str) -> Self {
        let mut lexer = Lexer {
            s: s.as_bytes(),
            pos: 0,
        };
        let mut items = Vec::new();
        loop {
            let item = lexer.lex();
            let end = item.0 == Token::EndOfString;
            items.push(item);
            if end {
                break;
            }
        }
        Parser { items, position: 0 }
    }

    fn in_context(tok: Token, ctx: Context) -> Token {
        match tok {
            Token::In | Token::NotIn if ctx == Context::Values => Token::Identifier,
            t => t,
        }
    }

    fn lookahead(&self, ctx: Context) -> (Token, String) {
        // The item list always ends with EndOfString, which is never consumed past.
        let (tok, lit) = &self.items[self.position.min(self.items.len() - 1)];
        (Self::in_context(*tok, ctx), lit.clone())
    }

    fn consume(&mut self, ctx: Context) -> (Token, String) {
        let item = self.lookahead(ctx);
        self.position += 1;
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut requirements = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(Context::Values);
            match tok {
                Token::Identifier | Token::DoesNotExist => {
                    let r = self.parse_requirement().map_err(|e| {
                        SelectorError(format!("unable to parse requirement: {}", e.0))
                    })?;
                    requirements.push(r);
                    let (t, l) = self.consume(Context::Values);
                    match t {
                        Token::EndOfString => return Ok(requirements),
                        Token::Comma => {
                            let (t2, l2) = self.lookahead(Context::Values);
                            if t2 != Token::Identifier && t2 != Token::DoesNotExist {
                                return err(format!(
                                    "found '{l2}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => return err(format!("found '{l}', expected: ',' or 'end of string'")),
                    }
                }
                Token::EndOfString => return Ok(requirements),
                _ => {
                    return err(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    ))
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, SelectorError> {
        let (key, op) = self.parse_key_and_infer_operator()?;
        if let Some(op) = op {
            return Requirement::new(&key, op, Vec::new(), None);
        }
        let op = self.parse_operator()?;
        let values = match op {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        Requirement::new(&key, op, values, None)
    }

    /// The key, and `Exists`/`DoesNotExist` when that is all the requirement says.
    fn parse_key_and_infer_operator(
        &mut self,
    ) -> Result<(String, Option<Operator>), SelectorError> {
        let mut op = None;
        let (mut tok, mut lit) = self.consume(Context::Values);
        if tok == Token::DoesNotExist {
            op = Some(Operator::DoesNotExist);
            (tok, lit) = self.consume(Context::Values);
        }
        if tok != Token::Identifier {
            return err(format!("found '{lit}', expected: identifier"));
        }
        // labels.Parse has no field path: Go prints a nil *field.Path as "<nil>".
        if let Some(e) = validate_label_key(&lit, &Path::new("<nil>")) {
            return Err(SelectorError(e.to_string()));
        }
        let (t, _) = self.lookahead(Context::Values);
        if (t == Token::EndOfString || t == Token::Comma) && op.is_none() {
            op = Some(Operator::Exists);
        }
        Ok((lit, op))
    }

    fn parse_operator(&mut self) -> Result<Operator, SelectorError> {
        let (tok, lit) = self.consume(Context::KeyAndOperator);
        Ok(match tok {
            Token::In => Operator::In,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            Token::NotIn => Operator::NotIn,
            Token::NotEquals => Operator::NotEquals,
            _ => {
                return err(format!(
                    "found '{lit}', expected: in, notin, =, ==, !=, gt, lt"
                ))
            }
        })
    }

    /// `(a,b,c)`: a sorted set, as Go's `sets.String.List()`.
    fn parse_values(&mut self) -> Result<Vec<String>, SelectorError> {
        let (tok, lit) = self.consume(Context::Values);
        if tok != Token::OpenPar {
            return err(format!("found '{lit}' expected: '('"));
        }
        let (tok, lit) = self.lookahead(Context::Values);
        match tok {
            Token::Identifier | Token::Comma => {
                let set = self.parse_identifiers_list()?;
                if self.consume(Context::Values).0 != Token::ClosedPar {
                    return err(format!("found '{lit}', expected: ')'"));
                }
                Ok(set.into_iter().collect())
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok(vec![String::new()])
            }
            _ => err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    /// A possibly empty list of comma-separated, possibly empty identifiers.
    fn parse_identifiers_list(
        &mut self,
    ) -> Result<std::collections::BTreeSet<String>, SelectorError> {
        let mut set = std::collections::BTreeSet::new();
        loop {
            let (tok, lit) = self.consume(Context::Values);
            match tok {
                Token::Identifier => {
                    set.insert(lit);
                    let (tok2, lit2) = self.lookahead(Context::Values);
                    match tok2 {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(set),
                        _ => return err(format!("found '{lit2}', expected: ',' or ')'")),
                    }
                }
                Token::Comma => {
                    if set.is_empty() {
                        set.insert(String::new()); // "(,"
                    }
                    let (tok2, _) = self.lookahead(Context::Values);
                    if tok2 == Token::ClosedPar {
                        set.insert(String::new()); // ",)"
                        return Ok(set);
                    }
                    if tok2 == Token::Comma {
                        set.insert(String::new()); // ",,"
                    }
                }
                _ => return err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<Vec<String>, SelectorError> {
        let (tok, _) = self.lookahead(Context::Values);
        if tok == Token::EndOfString || tok == Token::Comma {
            return Ok(vec![String::new()]);
        }
        let (tok, lit) = self.consume(Context::Values);
        if tok == Token::Identifier {
            return Ok(vec![lit]);
        }
        err(format!("found '{lit}', expected: identifier"))
    }
}

// ---------------------------------------------------------------------------------------------
// Key and value validation (util/validation: IsQualifiedName, IsValidLabelValue).

fn validate_label_key(key: &str, path: &Path) -> Option<FieldError> {
    let errs = crate::validation::names::is_qualified_name(key);
    (!errs.is_empty()).then(|| FieldError::invalid(path, key, errs.join("; ")))
}

fn validate_label_value(key: &str, value: &str, path: &Path) -> Option<FieldError> {
    let errs = crate::validation::names::is_valid_label_value(value);
    (!errs.is_empty()).then(|| FieldError::invalid(&path.key(key), value, errs.join("; ")))
}

/// Go's `%#v` of a `[]string` (`[]string(nil)` when empty: upstream copies values with
/// `append([]string(nil), ...)`).
fn go_string_slice(values: &[String]) -> BadValue {
    if values.is_empty() {
        return BadValue::Raw("[]string(nil)".to_string());
    }
    let quoted: Vec<String> = values.iter().map(|v| crate::field::go_quote(v)).collect();
    BadValue::Raw(format!("[]string{{{}}}", quoted.join(", ")))
}

// ---------------------------------------------------------------------------------------------
// Field selectors (fields/selector.go).

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldOperator {
    Equals,
    DoubleEquals,
    NotEquals,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub operator: FieldOperator,
    pub value: String,
}

impl FieldRequirement {
    fn matches(&self, actual: &str) -> bool {
        match self.operator {
            FieldOperator::Equals | FieldOperator::DoubleEquals => actual == self.value,
            FieldOperator::NotEquals => actual != self.value,
        }
    }
}

impl fmt::Display for FieldRequirement {
    /// Go's `hasTerm`/`notHasTerm` `String()`: `==` prints as `=`, the value escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.operator {
            FieldOperator::Equals | FieldOperator::DoubleEquals => "=",
            FieldOperator::NotEquals => "!=",
        };
        write!(f, "{}{}{}", self.field, op, escape_field_value(&self.value))
    }
}

/// A parsed field selector (`metadata.name=x,spec.nodeName!=`). Empty matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    pub requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// `fields.ParseSelector`. Terms are sorted (as raw strings, as upstream); no whitespace is
    /// trimmed.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut parts = split_terms(s);
        parts.sort_unstable();
        let mut requirements = Vec::new();
        for part in parts {
            if part.is_empty() {
                continue;
            }
            let Some((field, operator, rhs)) = split_term(part) else {
                return err(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                ));
            };
            let value = unescape_field_value(rhs)?;
            requirements.push(FieldRequirement {
                field: field.to_string(),
                operator,
                value,
            });
        }
        Ok(FieldSelector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// `get(field)` returns the object's value of a field label; `None` = not a supported field
    /// (matching then is the caller's error to report; here it counts as "").
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements
            .iter()
            .all(|r| r.matches(&get(&r.field).unwrap_or_default()))
    }

    /// The value required by `field=value` / `field==value`, if the selector has one.
    pub fn exact(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator != FieldOperator::NotEquals)
            .map(|r| r.value.as_str())
    }
}

impl fmt::Display for FieldSelector {
    /// Go's `Selector.String()`: the terms joined with `,`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// The comma-separated terms; a `\`-escaped comma is data, kept with its backslash.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// Split at the first operator (`!=`, then `==`, then `=` at each position); the left side has
/// no escaping.
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    const OPS: [(&str, FieldOperator); 3] = [
        ("!=", FieldOperator::NotEquals),
        ("==", FieldOperator::DoubleEquals),
        ("=", FieldOperator::Equals),
    ];
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, kind) in &OPS {
            if let Some(rhs) = rest.strip_prefix(op) {
                return Some((&term[..i], kind.clone(), rhs));
            }
        }
    }
    None
}

fn unescape_field_value(s: &str) -> Result<String, SelectorError> {
    if !s.contains(['\\', ',', '=']) {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            if matches!(c, '\\' | ',' | '=') {
                out.push(c);
            } else {
                return err(format!(
                    "invalid field selector: invalid escape sequence: \\{c}"
                ));
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            // Go prints the rune with %v, i.e. as its code point number.
            ',' | '=' => {
                return err(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                ))
            }
            c => out.push(c),
        }
    }
    if in_slash {
        return err("invalid field selector: invalid escape sequence: \\".to_string());
    }
    Ok(out)
}

/// Go's `fields.EscapeValue`.
fn escape_field_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | ',' | '=' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn req(key: &str, operator: Operator, values: &[&str]) -> Requirement {
        Requirement {
            key: key.to_string(),
            operator,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    fn parse_err(s: &str) -> String {
        LabelSelector::parse(s).unwrap_err().0
    }

    const NAME_PART_ERR: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

    // labels/selector_test.go TestSetSelectorParser: input, expected requirements (sorted by key).
    #[test]
    fn parses_upstream_good_cases() {
        use Operator::*;
        let cases: Vec<(&str, Vec<Requirement>)> = vec![
            ("", vec![]),
            ("   ", vec![]),
            ("\rx", vec![req("x", Exists, &[])]),
            (
                "this-is-a-dns.domain.com/key-with-dash",
                vec![req("this-is-a-dns.domain.com/key-with-dash", Exists, &[])],
            ),
            (
                "this-is-another-dns.domain.com/key-with-dash in (so,what)",
                vec![req(
                    "this-is-another-dns.domain.com/key-with-dash",
                    In,
                    &["so", "what"],
                )],
            ),
            (
                "0.1.2.domain/99 notin (10.10.100.1, tick.tack.clock)",
                vec![req(
                    "0.1.2.domain/99",
                    NotIn,
                    &["10.10.100.1", "tick.tack.clock"],
                )],
            ),
            ("foo  in\t (abc)", vec![req("foo", In, &["abc"])]),
            ("x notin\n (abc)", vec![req("x", NotIn, &["abc"])]),
            (
                "x  notin\t\t(abc,def)",
                vec![req("x", NotIn, &["abc", "def"])],
            ),
            ("x in (abc,def)", vec![req("x", In, &["abc", "def"])]),
            ("x in (abc,)", vec![req("x", In, &["", "abc"])]),
            ("x in ()", vec![req("x", In, &[""])]),
            (
                "x notin (abc,,def),bar,z in (),w",
                vec![
                    req("bar", Exists, &[]),
                    req("w", Exists, &[]),
                    req("x", NotIn, &["", "abc", "def"]),
                    req("z", In, &[""]),
                ],
            ),
            (
                "x,y in (a)",
                vec![req("x", Exists, &[]), req("y", In, &["a"])],
            ),
            ("x=a", vec![req("x", Equals, &["a"])]),
            ("x==a", vec![req("x", DoubleEquals, &["a"])]),
            ("x>1", vec![req("x", GreaterThan, &["1"])]),
            ("x<7", vec![req("x", LessThan, &["7"])]),
            (
                "x=a,y!=b",
                vec![req("x", Equals, &["a"]), req("y", NotEquals, &["b"])],
            ),
            (
                "x=a,y!=b,z in (h,i,j)",
                vec![
                    req("x", Equals, &["a"]),
                    req("y", NotEquals, &["b"]),
                    req("z", In, &["h", "i", "j"]),
                ],
            ),
            ("x notin ( )", vec![req("x", NotIn, &[""])]),
            ("x notin (, a)", vec![req("x", NotIn, &["", "a"])]),
            ("a ", vec![req("a", Exists, &[])]),
            (
                "a in (x,y,notin, z,in)",
                vec![req("a", In, &["in", "notin", "x", "y", "z"])],
            ),
            ("x=", vec![req("x", Equals, &[""])]),
            ("x= ", vec![req("x", Equals, &[""])]),
            (
                "x=,z= ",
                vec![req("x", Equals, &[""]), req("z", Equals, &[""])],
            ),
            ("!x", vec![req("x", DoesNotExist, &[])]),
            (
                "x>1,z<5",
                vec![req("x", GreaterThan, &["1"]), req("z", LessThan, &["5"])],
            ),
            // "in" and "notin" are identifiers where a key or a value is expected.
            ("in=notin", vec![req("in", Equals, &["notin"])]),
            ("in in (in)", vec![req("in", In, &["in"])]),
            ("x in (b,a,b)", vec![req("x", In, &["a", "b"])]),
            (
                "app.kubernetes.io/name=web",
                vec![req("app.kubernetes.io/name", Equals, &["web"])],
            ),
        ];
        for (input, want) in cases {
            let got = LabelSelector::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(got.requirements, want, "{input:?}");
        }
    }

    #[test]
    fn rejects_upstream_bad_cases_with_upstream_messages() {
        let cases: &[(&str, &str)] = &[
            ("x,,y", "found ',', expected: identifier after ','"),
            (",x,y", "found ',', expected: !, identifier, or 'end of string'"),
            (
                "x nott in (y)",
                "unable to parse requirement: found 'nott', expected: in, notin, =, ==, !=, gt, lt",
            ),
            ("a in (xyz),", "found '', expected: identifier after ','"),
            (
                "a in (xyz)b notin ()",
                "found 'b', expected: ',' or 'end of string'",
            ),
            (
                "a in (xyz abc)",
                "unable to parse requirement: found 'abc', expected: ',' or ')'",
            ),
            (
                "a notin(",
                "unable to parse requirement: found '', expected: ',', ')' or identifier",
            ),
            (
                "a (",
                "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt",
            ),
            ("(", "found '(', expected: !, identifier, or 'end of string'"),
            (
                "x==a==b",
                "found '==', expected: ',' or 'end of string'",
            ),
            ("!x=a", "found '=', expected: ',' or 'end of string'"),
            (
                "x in a",
                "unable to parse requirement: found 'a' expected: '('",
            ),
            (
                "x in (a",
                "unable to parse requirement: found '', expected: ',' or ')'",
            ),
            (
                "x=(",
                "unable to parse requirement: found '(', expected: identifier",
            ),
            ("!", "unable to parse requirement: found '', expected: identifier"),
            (
                "x<a",
                "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, the value must be an integer",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(&parse_err(input), want, "{input:?}");
        }
    }

    #[test]
    fn validates_keys_and_values_like_new_requirement() {
        assert_eq!(
            parse_err("-x=a"),
            format!("unable to parse requirement: <nil>: Invalid value: \"-x\": {NAME_PART_ERR}")
        );
        assert_eq!(
            parse_err("x=a||y"),
            format!(
                "unable to parse requirement: values[0][x]: Invalid value: \"a||y\": {LABEL_VALUE_MSG}"
            )
        );
        assert_eq!(
            parse_err("Example.com/x"),
            "unable to parse requirement: <nil>: Invalid value: \"Example.com/x\": prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        );
        assert_eq!(
            parse_err("/x"),
            "unable to parse requirement: <nil>: Invalid value: \"/x\": prefix part must be non-empty"
        );
        assert_eq!(
            parse_err("a/"),
            format!(
                "unable to parse requirement: <nil>: Invalid value: \"a/\": name part must be non-empty; {NAME_PART_ERR}"
            )
        );
        assert!(parse_err("a/b/c").contains(
            "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ));
        let long = "a".repeat(64);
        assert_eq!(
            parse_err(&long),
            format!(
                "unable to parse requirement: <nil>: Invalid value: \"{long}\": name part must be no more than 63 characters"
            )
        );
        assert_eq!(
            parse_err(&format!("x={long}")),
            format!(
                "unable to parse requirement: values[0][x]: Invalid value: \"{long}\": must be no more than 63 characters"
            )
        );
        // 63 characters are fine.
        LabelSelector::parse(&format!("{}={}", &long[1..], &long[1..])).unwrap();
    }

    // labels/selector_test.go TestToString.
    #[test]
    fn prints_canonical_strings() {
        use Operator::*;
        let cases: Vec<(Vec<Requirement>, &str)> = vec![
            (
                vec![
                    req("x", In, &["abc", "def"]),
                    req("y", NotIn, &["jkl"]),
                    req("z", Exists, &[]),
                ],
                "x in (abc,def),y notin (jkl),z",
            ),
            (
                vec![
                    req("x", NotIn, &["abc", "def"]),
                    req("y", NotEquals, &["jkl"]),
                    req("z", DoesNotExist, &[]),
                ],
                "x notin (abc,def),y!=jkl,!z",
            ),
            (
                vec![
                    req("x", NotIn, &["abc"]),
                    req("y", In, &["jkl", "mno"]),
                    req("z", NotIn, &[""]),
                ],
                "x notin (abc),y in (jkl,mno),z notin ()",
            ),
            (
                vec![
                    req("x", Equals, &["abc"]),
                    req("y", DoubleEquals, &["jkl"]),
                    req("z", NotEquals, &["a"]),
                    req("z", Exists, &[]),
                ],
                "x=abc,y==jkl,z!=a,z",
            ),
            (
                vec![
                    req("x", GreaterThan, &["2"]),
                    req("y", LessThan, &["8"]),
                    req("z", Exists, &[]),
                ],
                "x>2,y<8,z",
            ),
            // Values print sorted without the selector being changed.
            (vec![req("x", In, &["b", "a"])], "x in (a,b)"),
        ];
        for (reqs, want) in cases {
            let sel = LabelSelector { requirements: reqs };
            assert_eq!(sel.to_string(), want);
        }
        // Parsing sorts by key; printing round-trips.
        let sel = LabelSelector::parse("z in (b, a),!y,x==1,w").unwrap();
        assert_eq!(sel.to_string(), "w,x==1,!y,z in (a,b)");
        assert_eq!(LabelSelector::parse(&sel.to_string()).unwrap(), sel);
    }

    // labels/selector_test.go TestSelectorMatches / TestRequirementSelectorMatching.
    #[test]
    fn matches_like_upstream() {
        let l = labels(&[("x", "y"), ("z", "w"), ("n", "5")]);
        for s in [
            "",
            "x=y",
            "x==y",
            "x=y,z=w",
            "x!=z",
            "x in (y,a)",
            "x notin (a)",
            "a notin (b)",
            "x",
            "!a",
            "n>4",
            "n<6",
            "x=y,n>1,!q",
        ] {
            assert!(LabelSelector::parse(s).unwrap().matches(&l), "{s:?}");
        }
        for s in [
            "x=z",
            "x!=y",
            "a=b",
            "x in (a)",
            "a in (b)",
            "x notin (y)",
            "a",
            "!x",
            "n>5",
            "n<5",
            "x>1",
            "q>1",
            "x=y,z=v",
        ] {
            assert!(!LabelSelector::parse(s).unwrap().matches(&l), "{s:?}");
        }
        assert!(LabelSelector::parse("x")
            .unwrap()
            .matches(&labels(&[("x", "")])));
        assert!(!LabelSelector::parse("x=").unwrap().matches(&labels(&[])));
        assert!(LabelSelector::parse("x=")
            .unwrap()
            .matches(&labels(&[("x", "")])));
    }

    #[test]
    fn from_map_is_selector_from_set() {
        let sel = LabelSelector::from_map(&labels(&[("b", "2"), ("a", "1")]));
        assert_eq!(sel.to_string(), "a=1,b=2");
        assert!(sel.matches(&labels(&[("a", "1"), ("b", "2"), ("c", "3")])));
        assert!(!sel.matches(&labels(&[("a", "1")])));
        let empty = LabelSelector::from_map(&BTreeMap::new());
        assert!(empty.is_empty());
        assert!(empty.matches(&labels(&[("a", "1")])));
        assert_eq!(sel.exact("a"), Some("1"));
        assert_eq!(sel.exact("c"), None);
    }

    fn meta(
        match_labels: &[(&str, &str)],
        exprs: &[(&str, &str, Option<&[&str]>)],
    ) -> MetaLabelSelector {
        MetaLabelSelector {
            match_labels: (!match_labels.is_empty()).then(|| labels(match_labels)),
            match_expressions: (!exprs.is_empty()).then(|| {
                exprs
                    .iter()
                    .map(|(k, op, vals)| LabelSelectorRequirement {
                        key: k.to_string(),
                        operator: op.to_string(),
                        values: vals.map(|v| v.iter().map(|s| s.to_string()).collect()),
                    })
                    .collect()
            }),
        }
    }

    #[test]
    fn from_meta_is_label_selector_as_selector() {
        let sel = LabelSelector::from_meta(&meta(
            &[("app", "web")],
            &[
                ("tier", "In", Some(&["b", "a"])),
                ("env", "NotIn", Some(&["dev"])),
                ("canary", "DoesNotExist", None),
                ("track", "Exists", Some(&[])),
            ],
        ))
        .unwrap();
        assert_eq!(
            sel.to_string(),
            "app=web,!canary,env notin (dev),tier in (a,b),track"
        );
        assert!(sel.matches(&labels(&[("app", "web"), ("tier", "a"), ("track", "x")])));
        assert!(!sel.matches(&labels(&[
            ("app", "web"),
            ("tier", "a"),
            ("track", "x"),
            ("canary", "1")
        ])));

        let empty = LabelSelector::from_meta(&MetaLabelSelector::default()).unwrap();
        assert!(empty.is_empty());
        assert!(empty.matches(&labels(&[("anything", "at-all")])));
    }

    #[test]
    fn from_meta_errors_are_upstreams() {
        let e = |m: MetaLabelSelector| LabelSelector::from_meta(&m).unwrap_err().0;
        assert_eq!(
            e(meta(&[], &[("a", "Equals", Some(&["b"]))])),
            "\"Equals\" is not a valid label selector operator"
        );
        assert_eq!(
            e(meta(&[], &[("a", "In", None)])),
            "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty"
        );
        assert_eq!(
            e(meta(&[], &[("a", "NotIn", Some(&[]))])),
            "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty"
        );
        assert_eq!(
            e(meta(&[], &[("a", "Exists", Some(&["x"]))])),
            "values: Invalid value: []string{\"x\"}: values set must be empty for exists and does not exist"
        );
        assert_eq!(
            e(meta(&[("-a", "b")], &[])),
            format!("key: Invalid value: \"-a\": {NAME_PART_ERR}")
        );
        assert_eq!(
            e(meta(&[("a", "b c")], &[])),
            format!("values[0][a]: Invalid value: \"b c\": {LABEL_VALUE_MSG}")
        );
        // Several errors aggregate as Go's ErrorList.ToAggregate().
        assert_eq!(
            e(meta(&[], &[("-a", "In", Some(&["-"]))])),
            format!(
                "[key: Invalid value: \"-a\": {NAME_PART_ERR}, values[0][-a]: Invalid value: \"-\": {LABEL_VALUE_MSG}]"
            )
        );
    }

    #[test]
    fn requirement_constructor_checks_value_counts() {
        let e = |op, vals: &[&str]| {
            Requirement::new("x", op, vals.iter().map(|s| s.to_string()).collect(), None)
                .unwrap_err()
                .0
        };
        assert_eq!(
            e(Operator::Equals, &["a", "b"]),
            "values: Invalid value: []string{\"a\", \"b\"}: exact-match compatibility requires one single value"
        );
        assert_eq!(
            e(Operator::GreaterThan, &[]),
            "values: Invalid value: []string(nil): for 'Gt', 'Lt' operators, exactly one value is required"
        );
        assert_eq!(
            e(Operator::LessThan, &["1", "x"]),
            "[values: Invalid value: []string{\"1\", \"x\"}: for 'Gt', 'Lt' operators, exactly one value is required, values[1]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer]"
        );
        let p = Path::new("spec").child("selector");
        assert_eq!(
            Requirement::new("-", Operator::Exists, vec![], Some(&p))
                .unwrap_err()
                .0,
            format!("spec.selector.key: Invalid value: \"-\": {NAME_PART_ERR}")
        );
        assert!(Requirement::new("x", Operator::GreaterThan, vec!["3".into()], None).is_ok());
        // A negative number is an integer but not a valid label value.
        assert!(Requirement::new("x", Operator::GreaterThan, vec!["-3".into()], None).is_err());
    }

    #[test]
    fn field_selectors_parse_like_upstream() {
        let s = FieldSelector::parse("metadata.name=web,spec.nodeName!=,status.phase==Running")
            .unwrap();
        assert_eq!(
            s.requirements,
            vec![
                FieldRequirement {
                    field: "metadata.name".into(),
                    operator: FieldOperator::Equals,
                    value: "web".into()
                },
                FieldRequirement {
                    field: "spec.nodeName".into(),
                    operator: FieldOperator::NotEquals,
                    value: "".into()
                },
                FieldRequirement {
                    field: "status.phase".into(),
                    operator: FieldOperator::DoubleEquals,
                    value: "Running".into()
                },
            ]
        );
        // Terms are sorted; `==` prints as `=`.
        assert_eq!(
            FieldSelector::parse("b==2,a=1").unwrap().to_string(),
            "a=1,b=2"
        );
        assert!(FieldSelector::parse("").unwrap().is_empty());
        assert!(FieldSelector::parse(",").unwrap().is_empty());
        assert_eq!(s.exact("metadata.name"), Some("web"));
        assert_eq!(s.exact("status.phase"), Some("Running"));
        assert_eq!(s.exact("spec.nodeName"), None);

        let get = |f: &str| match f {
            "metadata.name" => Some("web".to_string()),
            "spec.nodeName" => Some("node-1".to_string()),
            "status.phase" => Some("Running".to_string()),
            _ => None,
        };
        assert!(s.matches(get));
        assert!(!FieldSelector::parse("spec.nodeName=").unwrap().matches(get));
        assert!(FieldSelector::parse("unknown=").unwrap().matches(get));
        assert!(FieldSelector::parse("").unwrap().matches(get));
    }

    // fields/selector_test.go TestSelectorParse, TestEscapeValue, TestInvalidEscapeSequences.
    #[test]
    fn field_selector_escaping() {
        let s = FieldSelector::parse(r"a=\,\=\\,b!=x\,y").unwrap();
        assert_eq!(s.requirements[0].value, r",=\");
        assert_eq!(s.requirements[1].value, "x,y");
        assert_eq!(s.to_string(), r"a=\,\=\\,b!=x\,y");
        // The left side has no escaping: the first operator splits.
        let s = FieldSelector::parse("a!b=c").unwrap();
        assert_eq!(s.requirements[0].field, "a!b");
        let s = FieldSelector::parse("x==").unwrap();
        assert_eq!(s.requirements[0].value, "");
        assert_eq!(s.requirements[0].operator, FieldOperator::DoubleEquals);
        let s = FieldSelector::parse("x===").unwrap_err();
        assert_eq!(
            s.0,
            "invalid field selector: unescaped character in value: 61"
        );
        for (input, want) in [
            ("foo", "invalid selector: 'foo'; can't understand 'foo'"),
            (
                "a=b,foo",
                "invalid selector: 'a=b,foo'; can't understand 'foo'",
            ),
            (
                r"a=\x",
                r"invalid field selector: invalid escape sequence: \x",
            ),
            (
                r"a=\",
                r"invalid field selector: invalid escape sequence: \",
            ),
            (
                "a=b=c",
                "invalid field selector: unescaped character in value: 61",
            ),
        ] {
            assert_eq!(
                FieldSelector::parse(input).unwrap_err().0,
                want,
                "{input:?}"
            );
        }
    }
}
