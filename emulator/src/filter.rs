//! `$filter` [doc]: comparisons (`eq ne gt ge lt le`) of a field with a
//! literal, combined with `and`, `or`, `not` and parentheses. Enum fields
//! compare only with a qualified enum literal, and only by eq/ne
//! (`SalesOrderStatus eq Microsoft.Dynamics.DataEntities.SalesStatus'Backorder'`)
//! [doc][obs]; `in` and `has` are not supported [doc]. dataAreaId compares
//! case-insensitively [obs]; SalesOrderNumber too, as F&O's SQL collation
//! does [unverified, likely], unless the `caseSensitiveOrderNumbers` switch
//! is on; other strings exactly [spec].

use std::cmp::Ordering;

use serde_json::Value;
use thiserror::Error;

use crate::entity::{AREA, ENTITY_TYPE, ENUM_NAMESPACE, FIELDS, Kind, NUMBER, Order, field_index};

#[derive(Debug, Error, PartialEq)]
pub enum FilterError {
    #[error("Syntax error in $filter at position {0}: {1}")]
    Syntax(usize, String),
    #[error("Could not find a property named '{0}' on type '{ENTITY_TYPE}'.")]
    UnknownProperty(String),
    #[error(
        "A binary operator with incompatible types was detected. Found operand types '{0}' and '{1}' for operator kind '{2}'."
    )]
    Incompatible(String, String, String),
    #[error("The query operator '{0}' is not supported.")]
    Unsupported(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Str(String),
    Enum(String),
    Num(f64),
    Date(jiff::Timestamp),
    Null,
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp(usize, Op, Lit),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    Str(String),
    /// Qualified type name and member.
    Enum(String, String),
    Word(String),
}

fn lex(s: &str) -> Result<Vec<(usize, Tok)>, FilterError> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let read_quoted = |i: &mut usize| -> Result<String, FilterError> {
        let start = *i;
        *i += 1;
        let mut v = String::new();
        loop {
            match chars.get(*i) {
                Some('\'') if chars.get(*i + 1) == Some(&'\'') => {
                    v.push('\'');
                    *i += 2;
                }
                Some('\'') => {
                    *i += 1;
                    return Ok(v);
                }
                Some(c) => {
                    v.push(*c);
                    *i += 1;
                }
                None => return Err(FilterError::Syntax(start, "unterminated string".into())),
            }
        }
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => i += 1,
            '(' => {
                out.push((i, Tok::LParen));
                i += 1;
            }
            ')' => {
                out.push((i, Tok::RParen));
                i += 1;
            }
            '\'' => {
                let pos = i;
                out.push((pos, Tok::Str(read_quoted(&mut i)?)));
            }
            c if c.is_alphanumeric() || "_.-:+$".contains(c) => {
                let pos = i;
                let mut w = String::new();
                while i < chars.len() && (chars[i].is_alphanumeric() || "_.-:+$".contains(chars[i]))
                {
                    w.push(chars[i]);
                    i += 1;
                }
                if chars.get(i) == Some(&'\'') {
                    out.push((pos, Tok::Enum(w, read_quoted(&mut i)?)));
                } else {
                    out.push((pos, Tok::Word(w)));
                }
            }
            other => return Err(FilterError::Syntax(i, format!("unexpected '{other}'"))),
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
}

impl Parser {
    fn peek_word(&self, w: &str) -> bool {
        matches!(self.toks.get(self.pos), Some((_, Tok::Word(x))) if x == w)
    }

    fn at(&self) -> usize {
        self.toks.get(self.pos).map_or(usize::MAX, |t| t.0)
    }

    fn or(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.and()?;
        while self.peek_word("or") {
            self.pos += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.unary()?;
        while self.peek_word("and") {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        if self.peek_word("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if matches!(self.toks.get(self.pos), Some((_, Tok::LParen))) {
            self.pos += 1;
            let e = self.or()?;
            match self.toks.get(self.pos) {
                Some((_, Tok::RParen)) => self.pos += 1,
                _ => return Err(FilterError::Syntax(self.at(), "expected ')'".into())),
            }
            return Ok(e);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, FilterError> {
        let at = self.at();
        let Some((_, Tok::Word(name))) = self.toks.get(self.pos).cloned() else {
            return Err(FilterError::Syntax(at, "expected a property name".into()));
        };
        let idx = field_index(&name).ok_or(FilterError::UnknownProperty(name.clone()))?;
        self.pos += 1;
        let op = match self.toks.get(self.pos) {
            Some((_, Tok::Word(w))) => match w.as_str() {
                "eq" => Op::Eq,
                "ne" => Op::Ne,
                "gt" => Op::Gt,
                "ge" => Op::Ge,
                "lt" => Op::Lt,
                "le" => Op::Le,
                "in" | "has" => return Err(FilterError::Unsupported(w.clone())),
                _ => {
                    return Err(FilterError::Syntax(
                        self.at(),
                        format!("unknown operator '{w}'"),
                    ));
                }
            },
            _ => {
                return Err(FilterError::Syntax(
                    self.at(),
                    "expected an operator".into(),
                ));
            }
        };
        self.pos += 1;
        let lit = match self.toks.get(self.pos).cloned() {
            Some((_, Tok::Str(s))) => Lit::Str(s),
            Some((_, Tok::Enum(ty, m))) => {
                let Kind::Enum(want, members) = FIELDS[idx].kind else {
                    return Err(incompatible(idx, &ty, op));
                };
                let qualified = format!("{ENUM_NAMESPACE}.{want}");
                if ty != qualified && ty != want {
                    return Err(incompatible(idx, &ty, op));
                }
                let m = members
                    .iter()
                    .find(|x| x.eq_ignore_ascii_case(&m))
                    .ok_or_else(|| {
                        FilterError::Syntax(at, format!("'{m}' is not a member of {qualified}"))
                    })?;
                Lit::Enum(m.to_string())
            }
            Some((_, Tok::Word(w))) if w == "null" => Lit::Null,
            Some((p, Tok::Word(w))) => {
                if let Ok(n) = w.parse::<f64>() {
                    Lit::Num(n)
                } else if let Ok(t) = w.parse::<jiff::Timestamp>() {
                    Lit::Date(t)
                } else {
                    return Err(FilterError::Syntax(p, format!("unexpected '{w}'")));
                }
            }
            _ => return Err(FilterError::Syntax(self.at(), "expected a literal".into())),
        };
        self.pos += 1;
        check_types(idx, op, &lit)?;
        Ok(Expr::Cmp(idx, op, lit))
    }
}

fn op_kind(op: Op) -> &'static str {
    match op {
        Op::Eq => "Equal",
        Op::Ne => "NotEqual",
        Op::Gt => "GreaterThan",
        Op::Ge => "GreaterThanOrEqual",
        Op::Lt => "LessThan",
        Op::Le => "LessThanOrEqual",
    }
}

fn type_name(idx: usize) -> String {
    match FIELDS[idx].kind {
        Kind::Str => "Edm.String".into(),
        Kind::Enum(t, _) => format!("{ENUM_NAMESPACE}.{t}"),
        Kind::Date => "Edm.DateTimeOffset".into(),
        Kind::Number => "Edm.Decimal".into(),
    }
}

fn incompatible(idx: usize, other: &str, op: Op) -> FilterError {
    FilterError::Incompatible(type_name(idx), other.to_string(), op_kind(op).into())
}

/// Enforces D365's typing: enums need an enum literal and eq/ne [doc].
fn check_types(idx: usize, op: Op, lit: &Lit) -> Result<(), FilterError> {
    let lit_type = match lit {
        Lit::Str(_) => "Edm.String",
        Lit::Enum(_) => "enum",
        Lit::Num(_) => "Edm.Decimal",
        Lit::Date(_) => "Edm.DateTimeOffset",
        Lit::Null => return Ok(()),
    };
    let ok = match (FIELDS[idx].kind, lit) {
        (Kind::Enum(..), Lit::Enum(_)) => matches!(op, Op::Eq | Op::Ne),
        (Kind::Str, Lit::Str(_)) | (Kind::Number, Lit::Num(_)) | (Kind::Date, Lit::Date(_)) => true,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(incompatible(idx, lit_type, op))
    }
}

/// Parses a `$filter` value.
pub fn parse(s: &str) -> Result<Expr, FilterError> {
    let mut p = Parser {
        toks: lex(s)?,
        pos: 0,
    };
    let e = p.or()?;
    if p.pos != p.toks.len() {
        return Err(FilterError::Syntax(
            p.at(),
            "unexpected trailing input".into(),
        ));
    }
    Ok(e)
}

impl Expr {
    /// The (dataAreaId, SalesOrderNumber) pairs outside which no order can
    /// match, when the filter pins both to finite sets — a bulk read's
    /// `dataAreaId eq 'a' and (SalesOrderNumber eq 'x' or …)`: answered by
    /// key lookups instead of a scan of every order per read, which made
    /// the emulator, not the client, the bottleneck of bulk benchmarks.
    pub fn key_candidates(&self) -> Option<Vec<(String, String)>> {
        let areas = self.pinned(AREA)?;
        let numbers = self.pinned(NUMBER)?;
        Some(
            areas
                .iter()
                .flat_map(|a| numbers.iter().map(move |n| (a.clone(), n.clone())))
                .collect(),
        )
    }

    /// Values `field` must equal for the filter to hold, if finitely many.
    fn pinned(&self, field: usize) -> Option<Vec<String>> {
        match self {
            Expr::Cmp(i, Op::Eq, Lit::Str(l)) if *i == field => Some(vec![l.clone()]),
            Expr::Or(a, b) => {
                let mut values = a.pinned(field)?;
                values.extend(b.pinned(field)?);
                Some(values)
            }
            Expr::And(a, b) => a.pinned(field).or_else(|| b.pinned(field)),
            _ => None,
        }
    }

    /// Whether an order matches; `exact_numbers` compares order numbers
    /// case-sensitively (the `caseSensitiveOrderNumbers` switch).
    pub fn eval(&self, o: &Order, exact_numbers: bool) -> bool {
        match self {
            Expr::Or(a, b) => a.eval(o, exact_numbers) || b.eval(o, exact_numbers),
            Expr::And(a, b) => a.eval(o, exact_numbers) && b.eval(o, exact_numbers),
            Expr::Not(a) => !a.eval(o, exact_numbers),
            Expr::Cmp(idx, op, lit) => {
                let v = &o.values[*idx];
                let folded = *idx == AREA || (*idx == NUMBER && !exact_numbers);
                let ord = match (v, lit) {
                    (Value::String(s), Lit::Str(l)) if folded => Some(
                        s.chars()
                            .flat_map(char::to_lowercase)
                            .cmp(l.chars().flat_map(char::to_lowercase)),
                    ),
                    (Value::String(s), Lit::Str(l) | Lit::Enum(l)) => {
                        Some(s.as_str().cmp(l.as_str()))
                    }
                    (Value::String(s), Lit::Date(t)) => {
                        s.parse::<jiff::Timestamp>().ok().map(|x| x.cmp(t))
                    }
                    (Value::Number(n), Lit::Num(l)) => n.as_f64().and_then(|x| x.partial_cmp(l)),
                    (Value::Null, Lit::Null) => Some(Ordering::Equal),
                    _ => None,
                };
                match (op, ord) {
                    (Op::Ne, None) => true,
                    (_, None) => false,
                    (Op::Eq, Some(o)) => o.is_eq(),
                    (Op::Ne, Some(o)) => o.is_ne(),
                    (Op::Gt, Some(o)) => o.is_gt(),
                    (Op::Ge, Some(o)) => o.is_ge(),
                    (Op::Lt, Some(o)) => o.is_lt(),
                    (Op::Le, Some(o)) => o.is_le(),
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "filter_tests.rs"]
mod tests;
