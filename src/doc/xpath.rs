//! The small XPath subset that event notification filters (RFC 4661) use, compiled once and
//! evaluated over an owned [`Element`] tree.
//!
//! The accepted grammar is documented on [`crate::doc::filter`]. Compilation resolves every
//! prefix to its namespace URI, so evaluation matches `(namespace, local name)` only.
//! An expression outside the subset fails with [`Error::Unsupported`] naming the construct;
//! an expression that is not XPath at all (unbalanced brackets, an unterminated literal, a
//! stray character) or that uses an undeclared prefix fails with [`Error::Malformed`].
#![forbid(unsafe_code)]

use crate::doc::Element;
use crate::error::{Error, Result};

/// Which names a step accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NameTest {
    /// `*`: any name in any namespace.
    Any,
    /// `prefix:*`: any local name in this namespace.
    Namespace(String),
    /// `prefix:name` or `name` (no namespace): exactly this expanded name.
    Name(String, String),
}

impl NameTest {
    fn matches(&self, ns: &str, local: &str) -> bool {
        match self {
            NameTest::Any => true,
            NameTest::Namespace(n) => n == ns,
            NameTest::Name(n, l) => n == ns && l == local,
        }
    }
}

/// A path relative to the context element inside a predicate: child steps without
/// predicates, optionally ending in an attribute. No step and no attribute means `.`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RelPath {
    steps: Vec<NameTest>,
    attribute: Option<NameTest>,
}

/// One condition of a predicate.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cond {
    /// `[path]`: the path selects something.
    Exists(RelPath),
    /// `[path="v"]`: some selected node's value equals the literal.
    Equals(RelPath, String),
    /// `[starts-with(path, "v")]`: the first selected node's value starts with the literal.
    StartsWith(RelPath, String),
}

/// One location step (child or descendant axis) with its predicates; every predicate is a
/// conjunction of conditions, and all predicates must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Step {
    descendant: bool,
    test: NameTest,
    predicates: Vec<Vec<Cond>>,
}

/// A compiled absolute location path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Path {
    steps: Vec<Step>,
    attribute: Option<NameTest>,
}

/// A node a path selected: an element, or (with `attribute`) one of its attributes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hit<'d> {
    /// The element, or the element that owns the selected attribute.
    pub(crate) element: &'d Element,
    /// Index of the selected attribute in `element.attributes`.
    pub(crate) attribute: Option<usize>,
}

/// A selected node with its position: the child indices from the root down to the element.
#[derive(Debug, Clone)]
pub(crate) struct Located<'d> {
    pub(crate) path: Vec<usize>,
    pub(crate) hit: Hit<'d>,
}

impl Hit<'_> {
    /// The node's value: an attribute's value, or an element's direct text, trimmed.
    pub(crate) fn value(&self) -> &str {
        match self.attribute {
            Some(i) => &self.element.attributes[i].value,
            None => self.element.text.trim(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok<'e> {
    Slash,
    DoubleSlash,
    At,
    LBracket,
    RBracket,
    LParen,
    RParen,
    Comma,
    Eq,
    Star,
    Dot,
    /// A name, with its prefix; `local` is `*` for `prefix:*`.
    Name(Option<&'e str>, &'e str),
    Literal(&'e str),
    Number(&'e str),
    /// Valid XPath that the subset does not accept (`..`, `::`, `|`, `!=`, `<`, `+`, `$`...).
    Other(&'e str),
}

fn is_name_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '\u{B7}')
}

struct Compiler<'e, 'r> {
    expr: &'e str,
    toks: Vec<Tok<'e>>,
    pos: usize,
    resolve: &'r dyn Fn(&str) -> Option<String>,
}

fn tokenize<'e>(expr: &'e str, malformed: impl Fn(String) -> Error) -> Result<Vec<Tok<'e>>> {
    let mut toks = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    let name_end = |from: usize| -> usize {
        expr[from..]
            .char_indices()
            .find(|&(_, c)| !is_name_char(c))
            .map_or(expr.len(), |(k, _)| from + k)
    };
    while i < expr.len() {
        let c = expr[i..].chars().next().unwrap_or(' ');
        let two = expr.get(i..i + 2).unwrap_or("");
        let (tok, len) = match c {
            ' ' | '\t' | '\r' | '\n' => {
                i += 1;
                continue;
            }
            '/' if two == "//" => (Tok::DoubleSlash, 2),
            '/' => (Tok::Slash, 1),
            '@' => (Tok::At, 1),
            '[' => (Tok::LBracket, 1),
            ']' => (Tok::RBracket, 1),
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            ',' => (Tok::Comma, 1),
            '=' => (Tok::Eq, 1),
            '*' => (Tok::Star, 1),
            '"' | '\'' => {
                let end = expr[i + 1..]
                    .find(c)
                    .ok_or_else(|| malformed(format!("unterminated literal at offset {i}")))?;
                (Tok::Literal(&expr[i + 1..i + 1 + end]), end + 2)
            }
            '.' if two == ".." => (Tok::Other(".."), 2),
            '.' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let end = expr[i + 1..]
                    .find(|ch: char| !ch.is_ascii_digit())
                    .map_or(expr.len(), |k| i + 1 + k);
                (Tok::Number(&expr[i..end]), end - i)
            }
            '.' => (Tok::Dot, 1),
            '0'..='9' => {
                let end = expr[i..]
                    .find(|ch: char| !ch.is_ascii_digit() && ch != '.')
                    .map_or(expr.len(), |k| i + k);
                (Tok::Number(&expr[i..end]), end - i)
            }
            ':' if two == "::" => (Tok::Other("::"), 2),
            '!' if two == "!=" => (Tok::Other("!="), 2),
            '<' | '>' if two.ends_with('=') => (Tok::Other(two), 2),
            '<' | '>' | '|' | '+' | '-' | '$' => (Tok::Other(&expr[i..i + 1]), 1),
            c if is_name_start(c) => {
                let end = name_end(i);
                let first = &expr[i..end];
                let after = &expr[end..];
                let mut rest = after.chars();
                match (rest.next(), rest.next()) {
                    (Some(':'), Some('*')) => (Tok::Name(Some(first), "*"), end + 2 - i),
                    (Some(':'), Some(n)) if is_name_start(n) => {
                        let local_end = name_end(end + 1);
                        (
                            Tok::Name(Some(first), &expr[end + 1..local_end]),
                            local_end - i,
                        )
                    }
                    _ => (Tok::Name(None, first), end - i),
                }
            }
            other => {
                return Err(malformed(format!(
                    "unexpected character '{other}' at offset {i}"
                )))
            }
        };
        toks.push(tok);
        i += len;
    }
    Ok(toks)
}

// ---------------------------------------------------------------------------------------
// Compiling
// ---------------------------------------------------------------------------------------

impl Path {
    /// Compiles `expr`, resolving prefixes with `resolve` (prefix to namespace URI).
    pub(crate) fn compile(expr: &str, resolve: &dyn Fn(&str) -> Option<String>) -> Result<Path> {
        let malformed =
            |what: String| Error::malformed("filter", format!("XPath '{expr}': {what}"));
        let toks = tokenize(expr, malformed)?;
        let mut c = Compiler {
            expr,
            toks,
            pos: 0,
            resolve,
        };
        c.path()
    }

    /// Every node this path selects in the document whose root element is `root`, in
    /// document order, each once.
    pub(crate) fn select<'d>(&self, root: &'d Element) -> Vec<Located<'d>> {
        let mut context: Vec<(Vec<usize>, &'d Element)> = Vec::new();
        for (n, step) in self.steps.iter().enumerate() {
            let mut found: Vec<(Vec<usize>, &'d Element)> = Vec::new();
            let mut push = |path: Vec<usize>, e: &'d Element| {
                if step.test.matches(&e.namespace, &e.name)
                    && step.predicates.iter().all(|p| p.iter().all(|c| c.holds(e)))
                {
                    found.push((path, e));
                }
            };
            if n == 0 {
                if step.descendant {
                    descendants_or_self(Vec::new(), root, &mut push);
                } else {
                    push(Vec::new(), root);
                }
            } else {
                // Contexts are in document order; one whose ancestor is also a context adds
                // no new descendants, so skipping it keeps `//` linear in the document size.
                let mut cover: Option<&[usize]> = None;
                for (path, e) in &context {
                    if step.descendant {
                        if cover.is_some_and(|c| path.starts_with(c)) {
                            continue;
                        }
                        cover = Some(path);
                        for (i, child) in e.children.iter().enumerate() {
                            let mut p = path.clone();
                            p.push(i);
                            descendants_or_self(p, child, &mut push);
                        }
                    } else {
                        for (i, child) in e.children.iter().enumerate() {
                            let mut p = path.clone();
                            p.push(i);
                            push(p, child);
                        }
                    }
                }
            }
            // Paths compare in document order (an ancestor's path is a prefix of its
            // descendants'); contexts never overlap, so no node is found twice.
            found.sort_by(|a, b| a.0.cmp(&b.0));
            context = found;
        }
        let mut out = Vec::new();
        for (path, element) in context {
            match &self.attribute {
                None => out.push(Located {
                    path,
                    hit: Hit {
                        element,
                        attribute: None,
                    },
                }),
                Some(test) => {
                    for (i, a) in element.attributes.iter().enumerate() {
                        if test.matches(&a.namespace, &a.name) {
                            out.push(Located {
                                path: path.clone(),
                                hit: Hit {
                                    element,
                                    attribute: Some(i),
                                },
                            });
                        }
                    }
                }
            }
        }
        out
    }
}

fn descendants_or_self<'d>(
    path: Vec<usize>,
    e: &'d Element,
    push: &mut impl FnMut(Vec<usize>, &'d Element),
) {
    for (i, child) in e.children.iter().enumerate() {
        let mut p = path.clone();
        p.push(i);
        descendants_or_self(p, child, push);
    }
    push(path, e);
}

impl RelPath {
    /// The values of the nodes this path selects from `e`, in document order.
    fn values<'d>(&self, e: &'d Element) -> Vec<&'d str> {
        let mut context = vec![e];
        for test in &self.steps {
            context = context
                .iter()
                .flat_map(|c| c.children.iter())
                .filter(|c| test.matches(&c.namespace, &c.name))
                .collect();
        }
        match &self.attribute {
            None => context.iter().map(|c| c.text.trim()).collect(),
            Some(test) => context
                .iter()
                .flat_map(|c| c.attributes.iter())
                .filter(|a| test.matches(&a.namespace, &a.name))
                .map(|a| a.value.as_str())
                .collect(),
        }
    }
}

impl Cond {
    fn holds(&self, e: &Element) -> bool {
        match self {
            Cond::Exists(p) => !p.values(e).is_empty(),
            Cond::Equals(p, v) => p.values(e).iter().any(|x| x == v),
            Cond::StartsWith(p, v) => p
                .values(e)
                .first()
                .is_some_and(|x| x.starts_with(v.as_str())),
        }
    }
}

impl<'e> Compiler<'e, '_> {
    fn peek(&self) -> Option<Tok<'e>> {
        self.toks.get(self.pos).copied()
    }

    fn peek2(&self) -> Option<Tok<'e>> {
        self.toks.get(self.pos + 1).copied()
    }

    fn bump(&mut self) -> Option<Tok<'e>> {
        let t = self.peek();
        self.pos += 1;
        t
    }

    fn unsupported(&self, construct: impl std::fmt::Display) -> Error {
        Error::Unsupported(format!(
            "filter XPath '{}': {construct} is outside the supported subset",
            self.expr
        ))
    }

    fn malformed(&self, what: impl std::fmt::Display) -> Error {
        Error::malformed("filter", format!("XPath '{}': {what}", self.expr))
    }

    /// The error for a token that cannot appear where it was found.
    fn unexpected(&self, tok: Option<Tok<'e>>, expected: &str) -> Error {
        match tok {
            None => self.malformed(format!("ends where {expected} was expected")),
            Some(Tok::Other(op)) => self.unsupported(format!("'{op}'")),
            Some(Tok::Number(n)) => self.unsupported(format!("the number {n}")),
            Some(Tok::Dot) => self.unsupported("'.' outside a predicate"),
            Some(t) => self.malformed(format!("{} where {expected} was expected", describe(t))),
        }
    }

    fn namespace(&self, prefix: &str) -> Result<String> {
        if prefix == "xml" {
            return Ok(crate::doc::XML_NS.to_owned());
        }
        (self.resolve)(prefix).ok_or_else(|| {
            self.malformed(format!(
                "prefix '{prefix}' is not declared (bind it with <ns-binding>)"
            ))
        })
    }

    fn name_test(&self, prefix: Option<&str>, local: &str) -> Result<NameTest> {
        Ok(match prefix {
            None => NameTest::Name(String::new(), local.to_owned()),
            Some(p) if local == "*" => NameTest::Namespace(self.namespace(p)?),
            Some(p) => NameTest::Name(self.namespace(p)?, local.to_owned()),
        })
    }

    /// A node test (name or `*`) at the current position, refusing function calls, node type
    /// tests and axes.
    fn node_test(&mut self) -> Result<NameTest> {
        match self.bump() {
            Some(Tok::Star) => Ok(NameTest::Any),
            Some(Tok::Name(prefix, local)) => match self.peek() {
                Some(Tok::LParen) => Err(self.unsupported(format!(
                    "the function or node test '{}()'",
                    qname(prefix, local)
                ))),
                Some(Tok::Other("::")) => {
                    Err(self.unsupported(format!("the axis '{}::'", qname(prefix, local))))
                }
                _ => self.name_test(prefix, local),
            },
            Some(Tok::Dot) => Err(self.unsupported("the self step '.'")),
            Some(Tok::Other("..")) => Err(self.unsupported("the parent step '..'")),
            t => Err(self.unexpected(t, "a name test")),
        }
    }

    fn attribute_test(&mut self) -> Result<NameTest> {
        match self.bump() {
            Some(Tok::Star) => Ok(NameTest::Any),
            Some(Tok::Name(None, local)) => Ok(NameTest::Name(String::new(), local.to_owned())),
            Some(Tok::Name(Some(p), "*")) => Ok(NameTest::Namespace(self.namespace(p)?)),
            Some(Tok::Name(Some(p), local)) => {
                Ok(NameTest::Name(self.namespace(p)?, local.to_owned()))
            }
            t => Err(self.unexpected(t, "an attribute name after '@'")),
        }
    }

    fn path(&mut self) -> Result<Path> {
        let mut steps = Vec::new();
        let mut attribute = None;
        match self.peek() {
            Some(Tok::Slash | Tok::DoubleSlash) => {}
            None => return Err(self.malformed("empty expression")),
            Some(Tok::Name(..) | Tok::Star | Tok::At | Tok::Dot) => {
                return Err(self.unsupported("a relative location path (start with '/')"))
            }
            t => return Err(self.unexpected(t, "'/'")),
        }
        while let Some(sep) = self.bump() {
            let descendant = match sep {
                Tok::Slash => false,
                Tok::DoubleSlash => true,
                Tok::LBracket => return Err(self.unsupported("a predicate on the attribute step")),
                Tok::Eq => return Err(self.unsupported("a comparison outside a predicate")),
                Tok::Other("|") => return Err(self.unsupported("the union operator '|'")),
                t => return Err(self.unexpected(Some(t), "'/' or the end")),
            };
            if attribute.is_some() {
                return Err(self.unsupported("a step after the attribute step"));
            }
            if self.peek() == Some(Tok::At) {
                self.pos += 1;
                if descendant {
                    return Err(self.unsupported("'//@' (attributes of every descendant)"));
                }
                if steps.is_empty() {
                    return Err(self.unsupported("an attribute of the document node"));
                }
                attribute = Some(self.attribute_test()?);
                continue;
            }
            if self.peek().is_none() {
                return Err(if steps.is_empty() {
                    self.unsupported("the document node '/' alone")
                } else {
                    self.malformed("ends with '/'")
                });
            }
            let test = self.node_test()?;
            let mut predicates = Vec::new();
            while self.peek() == Some(Tok::LBracket) {
                self.pos += 1;
                predicates.push(self.predicate()?);
            }
            steps.push(Step {
                descendant,
                test,
                predicates,
            });
        }
        Ok(Path { steps, attribute })
    }

    fn predicate(&mut self) -> Result<Vec<Cond>> {
        if self.peek() == Some(Tok::RBracket) {
            return Err(self.malformed("empty predicate '[]'"));
        }
        let mut conds = vec![self.cond()?];
        loop {
            match self.bump() {
                Some(Tok::RBracket) => return Ok(conds),
                Some(Tok::Name(None, "and")) => conds.push(self.cond()?),
                Some(Tok::Name(None, "or")) => return Err(self.unsupported("the operator 'or'")),
                Some(Tok::Name(None, op @ ("div" | "mod"))) => {
                    return Err(self.unsupported(format!("the arithmetic operator '{op}'")))
                }
                Some(Tok::LBracket) => return Err(self.unsupported("a nested predicate")),
                t => return Err(self.unexpected(t, "']' or 'and'")),
            }
        }
    }

    fn literal(&mut self) -> Result<String> {
        match self.bump() {
            Some(Tok::Literal(s)) => Ok(s.to_owned()),
            Some(Tok::Number(n)) => {
                Err(self.unsupported(format!("the numeric comparison with {n}")))
            }
            t => Err(self.unexpected(t, "a quoted literal")),
        }
    }

    fn cond(&mut self) -> Result<Cond> {
        match (self.peek(), self.peek2()) {
            (Some(Tok::Name(None, "starts-with")), Some(Tok::LParen)) => {
                self.pos += 2;
                if matches!(self.peek(), Some(Tok::Literal(_))) {
                    return Err(self.unsupported("starts-with() with a literal as first argument"));
                }
                let path = self.rel_path()?;
                match self.bump() {
                    Some(Tok::Comma) => {}
                    t => return Err(self.unexpected(t, "',' in starts-with()")),
                }
                let lit = self.literal()?;
                match self.bump() {
                    Some(Tok::RParen) => Ok(Cond::StartsWith(path, lit)),
                    t => Err(self.unexpected(t, "')' closing starts-with()")),
                }
            }
            (Some(Tok::Name(p, l)), Some(Tok::LParen)) => {
                Err(self.unsupported(format!("the function '{}()'", qname(p, l))))
            }
            (Some(Tok::Number(n)), _) => {
                Err(self.unsupported(format!("the positional predicate [{n}]")))
            }
            (Some(Tok::Literal(_)), _) => {
                Err(self.unsupported("a literal on the left of a comparison"))
            }
            _ => {
                let path = self.rel_path()?;
                match self.peek() {
                    Some(Tok::Eq) => {
                        self.pos += 1;
                        Ok(Cond::Equals(path, self.literal()?))
                    }
                    Some(Tok::Other(op @ ("!=" | "<" | "<=" | ">" | ">="))) => {
                        Err(self.unsupported(format!("the comparison '{op}'")))
                    }
                    _ => Ok(Cond::Exists(path)),
                }
            }
        }
    }

    fn rel_path(&mut self) -> Result<RelPath> {
        let mut steps = Vec::new();
        match self.peek() {
            Some(Tok::Dot) => {
                self.pos += 1;
                if matches!(self.peek(), Some(Tok::Slash | Tok::DoubleSlash)) {
                    return Err(self.unsupported("a path starting with './'"));
                }
                return Ok(RelPath {
                    steps,
                    attribute: None,
                });
            }
            Some(Tok::Slash | Tok::DoubleSlash) => {
                return Err(self.unsupported("an absolute path inside a predicate"))
            }
            _ => {}
        }
        loop {
            if self.peek() == Some(Tok::At) {
                self.pos += 1;
                let attribute = Some(self.attribute_test()?);
                if matches!(self.peek(), Some(Tok::Slash | Tok::DoubleSlash)) {
                    return Err(self.unsupported("a step after the attribute step"));
                }
                return Ok(RelPath { steps, attribute });
            }
            steps.push(self.node_test()?);
            match self.peek() {
                Some(Tok::Slash) => self.pos += 1,
                Some(Tok::DoubleSlash) => return Err(self.unsupported("'//' inside a predicate")),
                Some(Tok::LBracket) => return Err(self.unsupported("a nested predicate")),
                _ => {
                    return Ok(RelPath {
                        steps,
                        attribute: None,
                    })
                }
            }
        }
    }
}

fn qname(prefix: Option<&str>, local: &str) -> String {
    match prefix {
        Some(p) => format!("{p}:{local}"),
        None => local.to_owned(),
    }
}

fn describe(t: Tok<'_>) -> String {
    match t {
        Tok::Slash => "'/'".into(),
        Tok::DoubleSlash => "'//'".into(),
        Tok::At => "'@'".into(),
        Tok::LBracket => "'['".into(),
        Tok::RBracket => "']'".into(),
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::Comma => "','".into(),
        Tok::Eq => "'='".into(),
        Tok::Star => "'*'".into(),
        Tok::Dot => "'.'".into(),
        Tok::Name(p, l) => format!("the name '{}'", qname(p, l)),
        Tok::Literal(s) => format!("the literal \"{s}\""),
        Tok::Number(n) => format!("the number {n}"),
        Tok::Other(o) => format!("'{o}'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::{ns, Limits};

    fn resolve(p: &str) -> Option<String> {
        match p {
            "pidf" => Some(ns::PIDF.into()),
            "caps" => Some(ns::CAPS.into()),
            _ => None,
        }
    }

    fn compile(e: &str) -> Result<Path> {
        Path::compile(e, &resolve)
    }

    const DOC: &str = r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:a@x">
        <tuple id="t1"><status><basic>open</basic></status><contact> sip:a@x </contact></tuple>
        <tuple id="t2"><status><basic>closed</basic></status><contact>tel:+1</contact></tuple>
        </presence>"#;

    fn ids(p: &str) -> Vec<String> {
        let doc = Element::parse(DOC, &Limits::DEFAULT).unwrap();
        compile(p)
            .unwrap()
            .select(&doc)
            .iter()
            .map(|l| match l.hit.attribute {
                Some(_) => format!("@{}", l.hit.value()),
                None => l
                    .hit
                    .element
                    .attribute("", "id")
                    .unwrap_or(&l.hit.element.name)
                    .to_owned(),
            })
            .collect()
    }

    #[test]
    fn selects_in_document_order() {
        assert_eq!(ids("/pidf:presence/pidf:tuple"), ["t1", "t2"]);
        assert_eq!(
            ids("//pidf:tuple[starts-with(pidf:contact,'sip:')]"),
            ["t1"]
        );
        assert_eq!(
            ids("/pidf:presence/pidf:tuple[pidf:status/pidf:basic=\"closed\"]"),
            ["t2"]
        );
        assert_eq!(ids("/pidf:presence/pidf:tuple/@id"), ["@t1", "@t2"]);
        assert_eq!(ids("//*[@id='t2' and pidf:contact]"), ["t2"]);
        assert_eq!(ids("//pidf:basic[.='open']"), ["basic"]);
        assert_eq!(ids("/pidf:presence//pidf:status"), ["status", "status"]);
        assert_eq!(ids("/*/pidf:*[pidf:status][@id]"), ["t1", "t2"]);
        assert!(ids("/pidf:tuple").is_empty());
    }

    #[test]
    fn rejects_outside_the_subset() {
        for e in [
            "pidf:tuple",
            "/pidf:presence/pidf:tuple[1]",
            "/pidf:presence/..",
            "/pidf:presence/child::pidf:tuple",
            "/pidf:presence | /pidf:tuple",
            "/pidf:presence/pidf:tuple[contains(pidf:contact,'sip')]",
            "/pidf:presence/pidf:tuple[@id='a' or @id='b']",
            "/pidf:presence/pidf:tuple[@priority > '1']",
            "/pidf:presence/text()",
            "/",
            "/pidf:presence[$v]",
        ] {
            assert!(
                matches!(compile(e), Err(Error::Unsupported(_))),
                "{e}: {:?}",
                compile(e)
            );
        }
        for e in [
            "",
            "/pidf:presence[",
            "/pidf:presence/x:y",
            "/pidf:presence['a",
            "/a/",
            "/a]",
        ] {
            assert!(
                matches!(compile(e), Err(Error::Malformed(_))),
                "{e}: {:?}",
                compile(e)
            );
        }
    }
}
