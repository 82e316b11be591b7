//! Model text ⇄ layers: the text a PyTorch user would put inside `nn.Sequential(...)`.
//!
//! ```text
//! model := layer ("," layer)* [","]
//! layer := NAME ["(" [arg ("," arg)* [","]] ")"]       NAME may carry "nn." / "torch.nn."
//! arg   := [NAME "="] value
//! value := number | True | False | None | 'string' | "(" value ("," value)* ")" | layer
//! ```
//! `Sequential(...)`, `Parallel(...)` and `Residual(...)` take layers as their arguments and nest.

use crate::error::{Error, Result};
use crate::layers::{
    AdaptiveAvgPool2d, AvgPool2d, BatchNorm, Cell, Conv2d, Dropout, Dropout2d, ELU, Elementwise,
    Embedding, Flatten, GELU, Identity, Layer, LeakyReLU, Linear, MaxPool2d, Nonlinearity,
    Parallel, ReLU, Recurrent, Residual, Select, Sequential, SiLU, Sigmoid, Softmax, Tanh, Window,
};
use crate::tensor::MAX_VALUES;
use rand::Rng;

/// How deep tuples and layers may nest in model text; deeper text is refused before it can
/// exhaust the stack of the recursive parser.
const MAX_DEPTH: usize = 32;

/// The named presets and their text.
pub const PRESETS: &[(&str, &str)] = &[
    (
        "mlp",
        "Flatten, Linear(784,512), ReLU, Linear(512,512), ReLU, Linear(512,10)",
    ),
    (
        "seed-cnn",
        "Conv2d(1,8,3,stride=2), ReLU, Conv2d(8,8,3,stride=2), ReLU, Flatten, Linear(288,10)",
    ),
    (
        "lenet",
        "Conv2d(1,32,3,padding=1), ReLU, MaxPool2d(2), Conv2d(32,64,3,padding=1), ReLU, MaxPool2d(2), Flatten, Linear(3136,128), ReLU, Linear(128,10)",
    ),
    (
        "nielsen",
        "Flatten, Linear(784,30), Sigmoid, Linear(30,10), Sigmoid",
    ),
    // For 28×28 images read row by row: each of the 28 rows is one step of 28 pixels; the LSTM's
    // state after the last row is classified.
    (
        "row-lstm",
        "Flatten(1, 2), LSTM(28, 128), Select(1, -1), Linear(128, 10)",
    ),
    // For `--data text:FILE`: a character-level language model, V = the text's vocabulary size
    // (filled in by `with_vocabulary`); logits for the next character at every step.
    (
        "char-lstm",
        "Embedding({V}, 64), LSTM(64, 256), Linear(256, {V})",
    ),
    // For 28×28: a stem conv, three stages of two residual blocks (16, 32, 64 channels; the
    // second and third start with a stride-2 conv), a global average pool and a linear layer.
    (
        "resnet",
        concat!(
            "Conv2d(1,16,3,padding=1,bias=False), BatchNorm2d(16), ReLU, ",
            "Residual(Conv2d(16,16,3,padding=1,bias=False), BatchNorm2d(16), ReLU, ",
            "Conv2d(16,16,3,padding=1,bias=False), BatchNorm2d(16)), ReLU, ",
            "Residual(Conv2d(16,16,3,padding=1,bias=False), BatchNorm2d(16), ReLU, ",
            "Conv2d(16,16,3,padding=1,bias=False), BatchNorm2d(16)), ReLU, ",
            "Conv2d(16,32,3,stride=2,padding=1,bias=False), BatchNorm2d(32), ReLU, ",
            "Residual(Conv2d(32,32,3,padding=1,bias=False), BatchNorm2d(32), ReLU, ",
            "Conv2d(32,32,3,padding=1,bias=False), BatchNorm2d(32)), ReLU, ",
            "Residual(Conv2d(32,32,3,padding=1,bias=False), BatchNorm2d(32), ReLU, ",
            "Conv2d(32,32,3,padding=1,bias=False), BatchNorm2d(32)), ReLU, ",
            "Conv2d(32,64,3,stride=2,padding=1,bias=False), BatchNorm2d(64), ReLU, ",
            "Residual(Conv2d(64,64,3,padding=1,bias=False), BatchNorm2d(64), ReLU, ",
            "Conv2d(64,64,3,padding=1,bias=False), BatchNorm2d(64)), ReLU, ",
            "Residual(Conv2d(64,64,3,padding=1,bias=False), BatchNorm2d(64), ReLU, ",
            "Conv2d(64,64,3,padding=1,bias=False), BatchNorm2d(64)), ReLU, ",
            "AdaptiveAvgPool2d(1), Flatten, Linear(64,10)"
        ),
    ),
];

/// The text of a preset, or the text itself when it names none.
pub fn expand(text: &str) -> &str {
    let t = text.trim();
    PRESETS
        .iter()
        .find(|(name, _)| *name == t)
        .map_or(text, |(_, body)| body)
}

/// Where a model text takes the vocabulary size of its `--data text:FILE` (as in `char-lstm`).
pub const VOCABULARY: &str = "{V}";

/// The preset names, comma-separated (for help and error messages).
pub fn preset_names() -> String {
    PRESETS
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The text of a preset (or the text itself) with [`VOCABULARY`] replaced by `size`, the number
/// of distinct characters of the text the model is trained on.
pub fn with_vocabulary(text: &str, size: usize) -> String {
    expand(text).replace(VOCABULARY, &size.to_string())
}

/// Whether the model `text` (or preset) describes reads token ids: its first layer is Embedding.
pub fn takes_token_ids(text: &str) -> bool {
    parse(&with_vocabulary(text, 1)).is_ok_and(|c| c.first().is_some_and(|c| c.name == "Embedding"))
}

/// A parsed value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// `True` or `False`.
    Bool(bool),
    /// `None`.
    None,
    /// A quoted string, `'cos'` or `"cos"`.
    Str(String),
    /// A tuple `(a, b)` or a list `[a, b]`.
    Tuple(Vec<Value>),
    /// A layer (inside `Sequential(...)`, `Parallel(...)`).
    Layer(Call),
}

/// A layer as written: its name, arguments, and where it starts (column, from 1).
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// The layer name, without `nn.`.
    pub name: String,
    /// The arguments: keyword if any, value, column.
    pub args: Vec<(Option<String>, Value, usize)>,
    /// Where the name starts (column, from 1).
    pub column: usize,
}

struct Parser<'a> {
    text: &'a str,
    chars: Vec<char>,
    pos: usize,
    /// How many values enclose the cursor.
    depth: usize,
}

impl Parser<'_> {
    fn err<T>(&self, column: usize, msg: impl Into<String>) -> Result<T> {
        Err(Error::Syntax {
            text: self.text.to_string(),
            column,
            msg: msg.into(),
        })
    }

    fn skip_ws(&mut self) {
        while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_ws();
        self.chars.get(self.pos).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn describe(&mut self) -> String {
        match self.peek() {
            Some(c) => format!("'{c}'"),
            None => "the end of the text".into(),
        }
    }

    fn name(&mut self) -> Result<String> {
        self.skip_ws();
        let start = self.pos;
        while self
            .chars
            .get(self.pos)
            .is_some_and(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
        {
            self.pos += 1;
        }
        if start == self.pos {
            let found = self.describe();
            return self.err(start + 1, format!("expected a layer name, found {found}"));
        }
        Ok(self.chars[start..self.pos].iter().collect())
    }

    fn layer(&mut self) -> Result<Call> {
        self.skip_ws();
        let column = self.pos + 1;
        let full = self.name()?;
        let name = full
            .trim_start_matches("torch.")
            .trim_start_matches("nn.")
            .to_string();
        let mut args = Vec::new();
        if self.eat('(') {
            while !self.eat(')') {
                self.skip_ws();
                let col = self.pos + 1;
                let save = self.pos;
                let key = match self.name() {
                    Ok(k) if self.eat('=') => Some(k),
                    _ => {
                        self.pos = save;
                        None
                    }
                };
                let value = self.value()?;
                args.push((key, value, col));
                if !self.eat(',') && self.peek() != Some(')') {
                    let found = self.describe();
                    return self.err(
                        self.pos + 1,
                        format!("expected ',' or ')' in the arguments of {name}, found {found}"),
                    );
                }
            }
        }
        Ok(Call { name, args, column })
    }

    fn value(&mut self) -> Result<Value> {
        if self.depth == MAX_DEPTH {
            self.skip_ws();
            return self.err(
                self.pos + 1,
                format!("values nest more than {MAX_DEPTH} deep"),
            );
        }
        self.depth += 1;
        let value = self.value_inside();
        self.depth -= 1;
        value
    }

    fn value_inside(&mut self) -> Result<Value> {
        let c = self.peek();
        let col = self.pos + 1;
        match c {
            Some(open @ ('(' | '[')) => {
                let close = if open == '(' { ')' } else { ']' };
                self.pos += 1;
                let mut items = Vec::new();
                while !self.eat(close) {
                    items.push(self.value()?);
                    if !self.eat(',') && self.peek() != Some(close) {
                        let found = self.describe();
                        return self.err(
                            self.pos + 1,
                            format!("expected ',' or '{close}' in a tuple, found {found}"),
                        );
                    }
                }
                Ok(Value::Tuple(items))
            }
            Some(quote @ ('\'' | '"')) => {
                let start = self.pos + 1;
                match self.chars[start..].iter().position(|&c| c == quote) {
                    Some(len) => {
                        self.pos = start + len + 1;
                        Ok(Value::Str(self.chars[start..start + len].iter().collect()))
                    }
                    None => self.err(col, format!("a string opened with {quote} is not closed")),
                }
            }
            Some(c) if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => {
                let start = self.pos;
                self.pos += 1;
                while self
                    .chars
                    .get(self.pos)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
                {
                    self.pos += 1;
                }
                let s: String = self.chars[start..self.pos].iter().collect();
                if let Ok(i) = s.parse::<i64>() {
                    Ok(Value::Int(i))
                } else if let Ok(f) = s.parse::<f64>() {
                    Ok(Value::Float(f))
                } else {
                    self.err(col, format!("'{s}' is not a number"))
                }
            }
            Some(c) if c.is_alphabetic() => {
                let save = self.pos;
                match self.name()?.as_str() {
                    "True" => Ok(Value::Bool(true)),
                    "False" => Ok(Value::Bool(false)),
                    "None" => Ok(Value::None),
                    _ => {
                        self.pos = save;
                        Ok(Value::Layer(self.layer()?))
                    }
                }
            }
            _ => {
                let found = self.describe();
                self.err(col, format!("expected a value, found {found}"))
            }
        }
    }

    fn model(&mut self) -> Result<Vec<Call>> {
        let mut layers = vec![self.layer()?];
        while self.eat(',') {
            if self.peek().is_none() {
                break;
            }
            layers.push(self.layer()?);
        }
        if self.peek().is_some() {
            let found = self.describe();
            return self.err(
                self.pos + 1,
                format!("expected ',' between layers, found {found}"),
            );
        }
        Ok(layers)
    }
}

/// An error in a flag written as calls (`--augment`, `--lr-schedule`): a parse error as
/// `FLAG, column C: msg (in "text")` (it is not a model text), anything else as `FLAG: error`.
pub(crate) fn flag_error(flag: &str, e: Error) -> Error {
    match e {
        Error::Syntax { text, column, msg } => Error::invalid(format!(
            "{flag}, column {column}: {msg} (in \"{}\")",
            crate::error::spaced(&text)
        )),
        other => Error::invalid(format!("{flag}: {other}")),
    }
}

/// Parses model text (or a preset name) into layer calls.
///
/// # Errors
/// [`Error::Syntax`] with the column of the first character that does not fit.
pub fn parse(text: &str) -> Result<Vec<Call>> {
    let body = expand(text);
    if body.contains(VOCABULARY) {
        let what = PRESETS
            .iter()
            .find(|(_, b)| *b == body.trim())
            .map_or("a model text with {V}".into(), |(name, _)| {
                format!("preset {name}")
            });
        return Err(Error::invalid(format!(
            "{what} needs --data text:FILE: its vocabulary size V is the number of distinct characters of the text"
        )));
    }
    let mut text = body.trim();
    // Accept the whole `nn.Sequential(...)` too.
    for wrap in ["torch.nn.Sequential(", "nn.Sequential(", "Sequential("] {
        if let Some(inner) = text.strip_prefix(wrap).and_then(|t| t.strip_suffix(')')) {
            if parse_calls(inner).is_ok() {
                text = inner;
            }
            break;
        }
    }
    if text.is_empty() {
        return Err(Error::Syntax {
            text: body.to_string(),
            column: 1,
            msg: "the model text is empty".into(),
        });
    }
    parse_calls(text)
}

/// Parses comma-separated calls as written, without presets or a `Sequential(...)` around them
/// (also the `--augment` text).
pub(crate) fn parse_calls(text: &str) -> Result<Vec<Call>> {
    Parser {
        text,
        chars: text.chars().collect(),
        pos: 0,
        depth: 0,
    }
    .model()
}

/// Binds a call's arguments to a PyTorch signature: `params` in positional order, each with its
/// default (`None` = required).
pub(crate) struct Bound<'a> {
    call: &'a Call,
    text: &'a str,
    values: Vec<Option<&'a Value>>,
    params: Vec<(&'static str, Option<Value>)>,
}

impl<'a> Bound<'a> {
    pub(crate) fn new(
        call: &'a Call,
        text: &'a str,
        params: Vec<(&'static str, Option<Value>)>,
    ) -> Result<Self> {
        let err = |column, msg: String| {
            Err(Error::Syntax {
                text: text.to_string(),
                column,
                msg,
            })
        };
        let mut values: Vec<Option<&Value>> = vec![None; params.len()];
        let mut positional = 0;
        for (key, value, col) in &call.args {
            let i = match key {
                None => {
                    if values.iter().skip(positional).any(|v| v.is_some())
                        || positional >= params.len()
                    {
                        return err(
                            *col,
                            format!(
                                "{} takes at most {} positional arguments",
                                call.name,
                                params.len()
                            ),
                        );
                    }
                    positional += 1;
                    positional - 1
                }
                Some(k) => match params.iter().position(|(p, _)| p == k) {
                    Some(i) => i,
                    None => {
                        let names: Vec<&str> = params.iter().map(|(p, _)| *p).collect();
                        return err(
                            *col,
                            format!(
                                "{} has no argument '{k}' (it takes {})",
                                call.name,
                                names.join(", ")
                            ),
                        );
                    }
                },
            };
            if values[i].is_some() {
                return err(*col, format!("{} got '{}' twice", call.name, params[i].0));
            }
            values[i] = Some(value);
        }
        for (i, (p, default)) in params.iter().enumerate() {
            if values[i].is_none() && default.is_none() {
                return err(
                    call.column,
                    format!("{} is missing its argument '{p}'", call.name),
                );
            }
        }
        Ok(Bound {
            call,
            text,
            values,
            params,
        })
    }

    pub(crate) fn get(&self, name: &str) -> (&Value, usize) {
        let i = self
            .params
            .iter()
            .position(|(p, _)| *p == name)
            .expect("known parameter");
        let col = self
            .call
            .args
            .iter()
            .find(|(k, _, _)| k.as_deref() == Some(name))
            .map_or(self.call.column, |a| a.2);
        (
            self.values[i]
                .or(self.params[i].1.as_ref())
                .expect("bound or defaulted"),
            col,
        )
    }

    pub(crate) fn bad<T>(&self, name: &str, col: usize, want: &str) -> Result<T> {
        Err(Error::Syntax {
            text: self.text.to_string(),
            column: col,
            msg: format!("{}: '{name}' must be {want}", self.call.name),
        })
    }

    pub(crate) fn positive(&self, name: &str) -> Result<usize> {
        match self.get(name) {
            (Value::Int(v), _) if *v > 0 => Ok(*v as usize),
            (_, col) => self.bad(name, col, "a positive integer"),
        }
    }

    pub(crate) fn int(&self, name: &str) -> Result<i64> {
        match self.get(name) {
            (Value::Int(v), _) => Ok(*v),
            (_, col) => self.bad(name, col, "an integer"),
        }
    }

    pub(crate) fn float(&self, name: &str) -> Result<f64> {
        match self.get(name) {
            (Value::Int(v), _) => Ok(*v as f64),
            (Value::Float(v), _) if v.is_finite() => Ok(*v),
            (_, col) => self.bad(name, col, "a number"),
        }
    }

    pub(crate) fn flag(&self, name: &str) -> Result<bool> {
        match self.get(name) {
            (Value::Bool(b), _) => Ok(*b),
            (_, col) => self.bad(name, col, "True or False"),
        }
    }

    /// An int or an `(h, w)` pair of ints ≥ `min`; `None` means `fallback`.
    fn pair(
        &self,
        name: &str,
        min: i64,
        fallback: Option<(usize, usize)>,
    ) -> Result<(usize, usize)> {
        let want = if min > 0 {
            "a positive integer or a pair of them"
        } else {
            "an integer ≥ 0 or a pair of them"
        };
        match self.get(name) {
            (Value::Int(v), _) if *v >= min => Ok((*v as usize, *v as usize)),
            (Value::Tuple(t), col) => match t.as_slice() {
                [Value::Int(a), Value::Int(b)] if *a >= min && *b >= min => {
                    Ok((*a as usize, *b as usize))
                }
                _ => self.bad(name, col, want),
            },
            (Value::None, col) => fallback.map_or_else(|| self.bad(name, col, want), Ok),
            (_, col) => self.bad(name, col, want),
        }
    }

    /// Takes the parameters of a layer, a weight of shape `weight` and `bias` more, from `budget`
    /// (how many the model may still have), before any of them is allocated.
    fn take(&self, budget: &mut usize, weight: &[usize], bias: usize) -> Result<()> {
        let count = weight
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .and_then(|n| n.checked_add(bias));
        match count {
            Some(n) if n <= *budget => {
                *budget -= n;
                Ok(())
            }
            _ => Err(Error::Syntax {
                text: self.text.to_string(),
                column: self.call.column,
                msg: format!(
                    "{}: a weight of shape {weight:?} takes the model past {MAX_VALUES} parameters \
                     (2^28, the limit)",
                    self.call.name
                ),
            }),
        }
    }

    /// An argument PyTorch has that we accept only at its default.
    fn only_default(&self, name: &str, want: &str) -> Result<()> {
        let (v, col) = self.get(name);
        let default = self
            .params
            .iter()
            .find(|(p, _)| *p == name)
            .and_then(|p| p.1.as_ref());
        if Some(v) != default {
            self.bad(name, col, want)
        } else {
            Ok(())
        }
    }
}

/// Builds one layer from its call, drawing initial weights from `rng`. `budget` is how many
/// parameters the model may still have (at first [`MAX_VALUES`]); the layer's are taken from it.
///
/// # Errors
/// An unknown layer, a missing, unknown or ill-typed argument, or parameters beyond `budget`:
/// [`Error::Syntax`] at its column.
pub fn build(
    call: &Call,
    text: &str,
    budget: &mut usize,
    rng: &mut impl Rng,
) -> Result<Box<dyn Layer>> {
    use Value::{Bool, Float, Int};
    let bind = |params| Bound::new(call, text, params);
    let layer: Box<dyn Layer> = match call.name.as_str() {
        "Linear" => {
            let b = bind(vec![
                ("in_features", None),
                ("out_features", None),
                ("bias", Some(Bool(true))),
            ])?;
            let (inputs, outputs) = (b.positive("in_features")?, b.positive("out_features")?);
            let bias = b.flag("bias")?;
            b.take(budget, &[outputs, inputs], if bias { outputs } else { 0 })?;
            Box::new(Linear::new(inputs, outputs, bias, rng))
        }
        "Conv2d" => {
            let b = bind(vec![
                ("in_channels", None),
                ("out_channels", None),
                ("kernel_size", None),
                ("stride", Some(Int(1))),
                ("padding", Some(Int(0))),
                ("dilation", Some(Int(1))),
                ("groups", Some(Int(1))),
                ("bias", Some(Bool(true))),
            ])?;
            b.only_default("dilation", "1 (dilation is not supported)")?;
            b.only_default("groups", "1 (grouped convolution is not supported)")?;
            let (inputs, outputs) = (b.positive("in_channels")?, b.positive("out_channels")?);
            let kernel = b.pair("kernel_size", 1, None)?;
            let bias = b.flag("bias")?;
            b.take(
                budget,
                &[outputs, inputs, kernel.0, kernel.1],
                if bias { outputs } else { 0 },
            )?;
            Box::new(Conv2d::new(
                inputs,
                outputs,
                kernel,
                b.pair("stride", 1, None)?,
                b.pair("padding", 0, None)?,
                bias,
                rng,
            ))
        }
        "MaxPool2d" | "AvgPool2d" => {
            let b = bind(vec![
                ("kernel_size", None),
                ("stride", Some(Value::None)),
                ("padding", Some(Int(0))),
            ])?;
            let kernel = b.pair("kernel_size", 1, None)?;
            let window = Window {
                kernel,
                stride: b.pair("stride", 1, Some(kernel))?,
                padding: b.pair("padding", 0, None)?,
            };
            if window.padding.0 > kernel.0 / 2 || window.padding.1 > kernel.1 / 2 {
                let col = b.get("padding").1;
                return b.bad("padding", col, "at most half the kernel size");
            }
            if call.name == "MaxPool2d" {
                Box::new(MaxPool2d::new(window))
            } else {
                Box::new(AvgPool2d::new(window))
            }
        }
        "Flatten" => {
            let b = bind(vec![
                ("start_dim", Some(Int(1))),
                ("end_dim", Some(Int(-1))),
            ])?;
            Box::new(Flatten::new(b.int("start_dim")?, b.int("end_dim")?))
        }
        "Embedding" => {
            let b = bind(vec![
                ("num_embeddings", None),
                ("embedding_dim", None),
                ("padding_idx", Some(Value::None)),
            ])?;
            let (rows, dim) = (b.positive("num_embeddings")?, b.positive("embedding_dim")?);
            let padding_idx = match b.get("padding_idx").0 {
                Value::None => None,
                _ => Some(b.int("padding_idx")?),
            };
            b.take(budget, &[rows, dim], 0)?;
            Box::new(Embedding::new(rows, dim, padding_idx, rng)?)
        }
        "Select" => {
            let b = bind(vec![("dim", None), ("index", None)])?;
            Box::new(Select::new(b.int("dim")?, b.int("index")?))
        }
        "RNN" | "LSTM" | "GRU" => {
            let rnn = call.name == "RNN";
            let mut params = vec![
                ("input_size", None),
                ("hidden_size", None),
                ("num_layers", Some(Int(1))),
            ];
            if rnn {
                params.push(("nonlinearity", Some(Value::Str("tanh".into()))));
            }
            params.extend([
                ("bias", Some(Bool(true))),
                ("batch_first", Some(Bool(true))),
                ("dropout", Some(Float(0.0))),
                ("bidirectional", Some(Bool(false))),
            ]);
            if call.name == "LSTM" {
                params.push(("proj_size", Some(Int(0))));
            }
            let b = bind(params)?;
            let (inputs, hidden) = (b.positive("input_size")?, b.positive("hidden_size")?);
            let layers = b.positive("num_layers")?;
            let cell = match call.name.as_str() {
                "LSTM" => Cell::Lstm,
                "GRU" => Cell::Gru,
                _ => match b.get("nonlinearity") {
                    (Value::Str(a), _) if a == "tanh" => Cell::Rnn(Nonlinearity::Tanh),
                    (Value::Str(a), _) if a == "relu" => Cell::Rnn(Nonlinearity::Relu),
                    (_, col) => return b.bad("nonlinearity", col, "'tanh' or 'relu'"),
                },
            };
            if !b.flag("batch_first")? {
                let col = b.get("batch_first").1;
                return b.bad(
                    "batch_first",
                    col,
                    "True: scratchnet is always batch-first, its data files and layers (Select, \
                     Linear, ...) hold sequences as [N, T, features], never [T, N, features]",
                );
            }
            if b.float("dropout")? != 0.0 {
                let col = b.get("dropout").1;
                return b.bad(
                    "dropout",
                    col,
                    "0 (dropout between layers is not supported)",
                );
            }
            if call.name == "LSTM" && b.int("proj_size")? != 0 {
                let col = b.get("proj_size").1;
                return b.bad("proj_size", col, "0 (projections are not supported)");
            }
            let (bias, bidirectional) = (b.flag("bias")?, b.flag("bidirectional")?);
            let (gh, dirs) = (cell.gates() * hidden, if bidirectional { 2 } else { 1 });
            for k in 0..layers {
                let layer_inputs = if k == 0 { inputs } else { dirs * hidden };
                for _ in 0..dirs {
                    let biases = if bias { 2 * gh } else { 0 };
                    b.take(budget, &[gh, layer_inputs + hidden], biases)?;
                }
            }
            Box::new(Recurrent::new(
                cell,
                inputs,
                hidden,
                layers,
                bias,
                bidirectional,
                rng,
            ))
        }
        "ReLU" | "Sigmoid" | "Tanh" => {
            let b = bind(if call.name == "ReLU" {
                vec![("inplace", Some(Bool(false)))]
            } else {
                vec![]
            })?;
            match call.name.as_str() {
                "ReLU" => {
                    b.flag("inplace")?;
                    Box::new(Elementwise::new(ReLU))
                }
                "Sigmoid" => Box::new(Elementwise::new(Sigmoid)),
                _ => Box::new(Elementwise::new(Tanh)),
            }
        }
        "LeakyReLU" => {
            let b = bind(vec![
                ("negative_slope", Some(Float(0.01))),
                ("inplace", Some(Bool(false))),
            ])?;
            b.flag("inplace")?;
            Box::new(Elementwise::new(LeakyReLU {
                negative_slope: b.float("negative_slope")? as f32,
            }))
        }
        "Softmax" => {
            let b = bind(vec![("dim", Some(Int(1)))])?;
            Box::new(Softmax::new(b.int("dim")?))
        }
        "Dropout" | "Dropout2d" => {
            let b = bind(vec![
                ("p", Some(Float(0.5))),
                ("inplace", Some(Bool(false))),
            ])?;
            let p = b.float("p")?;
            if !(0.0..=1.0).contains(&p) {
                let col = b.get("p").1;
                return b.bad("p", col, "between 0 and 1");
            }
            b.flag("inplace")?;
            if call.name == "Dropout" {
                Box::new(Dropout::new(p as f32))
            } else {
                Box::new(Dropout2d::new(p as f32))
            }
        }
        "GELU" => {
            let b = bind(vec![("approximate", Some(Value::Str("none".into())))])?;
            match b.get("approximate") {
                (Value::Str(a), _) if a == "none" || a == "tanh" => {
                    Box::new(Elementwise::new(GELU { tanh: a == "tanh" }))
                }
                (_, col) => return b.bad("approximate", col, "'none' or 'tanh'"),
            }
        }
        "SiLU" => {
            let b = bind(vec![("inplace", Some(Bool(false)))])?;
            b.flag("inplace")?;
            Box::new(Elementwise::new(SiLU))
        }
        "ELU" => {
            let b = bind(vec![
                ("alpha", Some(Float(1.0))),
                ("inplace", Some(Bool(false))),
            ])?;
            b.flag("inplace")?;
            Box::new(Elementwise::new(ELU {
                alpha: b.float("alpha")? as f32,
            }))
        }
        "Identity" => {
            bind(vec![])?;
            Box::new(Identity)
        }
        "BatchNorm1d" | "BatchNorm2d" => {
            let b = bind(vec![
                ("num_features", None),
                ("eps", Some(Float(1e-5))),
                ("momentum", Some(Float(0.1))),
                ("affine", Some(Bool(true))),
                ("track_running_stats", Some(Bool(true))),
            ])?;
            b.only_default("affine", "True (affine=False is not supported)")?;
            b.only_default(
                "track_running_stats",
                "True (track_running_stats=False is not supported)",
            )?;
            let c = b.positive("num_features")?;
            let eps = b.float("eps")?;
            if eps <= 0.0 {
                let col = b.get("eps").1;
                return b.bad("eps", col, "a positive number");
            }
            let momentum = b.float("momentum")?;
            if !(0.0..=1.0).contains(&momentum) {
                let col = b.get("momentum").1;
                return b.bad("momentum", col, "between 0 and 1 (None is not supported)");
            }
            b.take(budget, &[c], c)?;
            let dims = if call.name == "BatchNorm1d" { 1 } else { 2 };
            Box::new(BatchNorm::new(dims, c, eps as f32, momentum as f32))
        }
        "AdaptiveAvgPool2d" => {
            let b = bind(vec![("output_size", None)])?;
            Box::new(AdaptiveAvgPool2d::new(b.pair("output_size", 1, None)?))
        }
        "Sequential" | "Parallel" | "Residual" => {
            let mut children = Vec::new();
            for (key, value, col) in &call.args {
                match (key, value) {
                    (None, Value::Layer(c)) => children.push(build(c, text, budget, rng)?),
                    _ => {
                        return Err(Error::Syntax {
                            text: text.to_string(),
                            column: *col,
                            msg: format!("{} takes layers as its arguments", call.name),
                        });
                    }
                }
            }
            if children.is_empty() {
                return Err(Error::Syntax {
                    text: text.to_string(),
                    column: call.column,
                    msg: format!("{} needs at least one layer", call.name),
                });
            }
            match call.name.as_str() {
                "Sequential" => Box::new(Sequential::new(children)),
                "Parallel" => Box::new(Parallel::new(children)),
                _ => Box::new(Residual::new(children)),
            }
        }
        other => {
            return Err(Error::Syntax {
                text: text.to_string(),
                column: call.column,
                msg: format!(
                    "unknown layer '{other}' (known: Linear, Conv2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, BatchNorm1d, BatchNorm2d, Flatten, Identity, ReLU, LeakyReLU, ELU, GELU, SiLU, Sigmoid, Tanh, Softmax, Dropout, Dropout2d, Embedding, Select, RNN, LSTM, GRU, Sequential, Parallel, Residual)"
                ),
            });
        }
    };
    Ok(layer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// `row-lstm` reads a 28×28 image as 28 steps of 28 pixels: PyTorch's parameter names and
    /// counts (4·128·(28 + 128) + 8·128 for the LSTM, 1290 for the head), 10 scores out.
    #[test]
    fn row_lstm_preset_reads_rows_as_steps() {
        let m = crate::model::Model::new("row-lstm", &[1, 28, 28], 0).unwrap();
        assert_eq!(m.output_shape(), &[10]);
        assert_eq!(
            m.param_names(),
            [
                "1.weight_ih_l0",
                "1.weight_hh_l0",
                "1.bias_ih_l0",
                "1.bias_hh_l0",
                "3.weight",
                "3.bias"
            ]
        );
        let mut count = 0;
        crate::layers::Layer::params(m.net_ref(), "", &mut |_, p| count += p.value.len());
        assert_eq!(count, 4 * 128 * (28 + 128) + 8 * 128 + 1290);
    }

    /// `char-lstm` for a vocabulary of V characters: ids `[T]` in, V scores per step out;
    /// 64·V + 4·256·(64 + 256) + 8·256 + 256·V + V parameters. Without V it names what it needs.
    #[test]
    fn char_lstm_preset_is_sized_by_the_vocabulary() {
        let v = 37;
        let m = crate::model::Model::new(&with_vocabulary("char-lstm", v), &[16], 0).unwrap();
        assert_eq!(m.output_shape(), &[16, v]);
        assert_eq!(
            m.text(),
            "Embedding(37, 64), LSTM(64, 256), Linear(256, 37)"
        );
        assert_eq!(
            m.param_names(),
            [
                "0.weight",
                "1.weight_ih_l0",
                "1.weight_hh_l0",
                "1.bias_ih_l0",
                "1.bias_hh_l0",
                "2.weight",
                "2.bias"
            ]
        );
        let mut count = 0;
        crate::layers::Layer::params(m.net_ref(), "", &mut |_, p| count += p.value.len());
        assert_eq!(count, 64 * v + 4 * 256 * (64 + 256) + 8 * 256 + 256 * v + v);
        assert_eq!(with_vocabulary("mlp", v), expand("mlp"), "no V, no change");
        let e = parse("char-lstm").unwrap_err().to_string();
        assert_eq!(
            e,
            "preset char-lstm needs --data text:FILE: its vocabulary size V is the number of distinct characters of the text"
        );
        let e = parse("Embedding({V}, 4)").unwrap_err().to_string();
        assert!(
            e.starts_with("a model text with {V} needs --data text:FILE"),
            "{e}"
        );
    }

    fn names(text: &str) -> Vec<String> {
        parse(text)
            .unwrap()
            .iter()
            .map(|c| c.name.clone())
            .collect()
    }

    /// The PyTorch reprs of the layers `text` builds.
    fn reprs(text: &str) -> Vec<String> {
        let (mut rng, mut budget) = (rand_chacha::ChaCha8Rng::seed_from_u64(0), MAX_VALUES);
        parse(text)
            .unwrap()
            .iter()
            .map(|c| build(c, text, &mut budget, &mut rng).unwrap().to_string())
            .collect()
    }

    fn build_err(text: &str) -> String {
        let (mut rng, mut budget) = (rand_chacha::ChaCha8Rng::seed_from_u64(0), MAX_VALUES);
        match parse(text) {
            Err(e) => e.to_string(),
            Ok(calls) => calls
                .iter()
                .map(|c| build(c, text, &mut budget, &mut rng))
                .find_map(|r| r.err())
                .expect("an error")
                .to_string(),
        }
    }

    #[test]
    fn parses_presets_keywords_positionals_and_pytorch_spellings() {
        assert_eq!(
            names("seed-cnn"),
            ["Conv2d", "ReLU", "Conv2d", "ReLU", "Flatten", "Linear"]
        );
        assert_eq!(
            names("nn.Sequential(nn.Linear(2, 3), nn.ReLU(), torch.nn.Linear(3,1),)"),
            ["Linear", "ReLU", "Linear"]
        );
        let calls = parse("Conv2d(1, 8, kernel_size=(3, 2), stride=2, bias=False), LeakyReLU(0.1)")
            .unwrap();
        assert_eq!(
            calls[0].args[2],
            (
                Some("kernel_size".into()),
                Value::Tuple(vec![Value::Int(3), Value::Int(2)]),
                14
            )
        );
        assert_eq!(calls[0].args[4].1, Value::Bool(false));
        assert_eq!(calls[1].args[0].1, Value::Float(0.1));
        let nested = parse("Parallel(Sequential(Linear(4,2), ReLU), Linear(4, 1))").unwrap();
        assert!(
            matches!(&nested[0].args[0].1, Value::Layer(c) if c.name == "Sequential" && c.args.len() == 2)
        );
    }

    #[test]
    fn syntax_errors_point_at_the_column() {
        let e = parse("Linear(784,10), ReLU)").unwrap_err().to_string();
        assert_eq!(
            e,
            "model text, column 21: expected ',' between layers, found ')' (in \"Linear(784,10), ReLU)\")"
        );
        let e = parse("Linear(784 10)").unwrap_err().to_string();
        assert!(
            e.starts_with(
                "model text, column 12: expected ',' or ')' in the arguments of Linear, found '1'"
            ),
            "{e}"
        );
        let e = parse("Linear(784,").unwrap_err().to_string();
        assert!(
            e.starts_with("model text, column 12: expected a value, found the end of the text"),
            "{e}"
        );
        let e = parse("Conv2d(1,8,3x)").unwrap_err().to_string();
        assert!(
            e.starts_with("model text, column 12: '3x' is not a number"),
            "{e}"
        );
        assert!(
            parse("  ")
                .unwrap_err()
                .to_string()
                .contains("the model text is empty")
        );
        assert!(
            parse("ReLU,, ReLU")
                .unwrap_err()
                .to_string()
                .contains("column 6: expected a layer name, found ','")
        );
    }

    #[test]
    fn argument_errors_name_layer_argument_and_column() {
        assert!(
            build_err("Linear(784)")
                .contains("column 1: Linear is missing its argument 'out_features'")
        );
        assert!(build_err("Linear(784, 10, bais=True)").contains(
            "column 17: Linear has no argument 'bais' (it takes in_features, out_features, bias)"
        ));
        assert!(
            build_err("Linear(784, -3)")
                .contains("column 1: Linear: 'out_features' must be a positive integer")
        );
        assert!(
            build_err("Linear(1, 2, True, 4)")
                .contains("Linear takes at most 3 positional arguments")
        );
        assert!(
            build_err("Linear(1, 2, in_features=3)").contains("Linear got 'in_features' twice")
        );
        assert!(
            build_err("Conv2d(1, 8, 3, stride=0)")
                .contains("'stride' must be a positive integer or a pair of them")
        );
        assert!(
            build_err("Conv2d(1, 8, 3, padding=(1,2,3))")
                .contains("'padding' must be an integer ≥ 0 or a pair of them")
        );
        assert!(
            build_err("Conv2d(1, 8, 3, groups=2)").contains("grouped convolution is not supported")
        );
        assert!(build_err("MaxPool2d(2, padding=2)").contains("at most half the kernel size"));
        assert!(build_err("Dropout(1.5)").contains("'p' must be between 0 and 1"));
        assert!(build_err("Sigmoid(2)").contains("Sigmoid takes at most 0 positional arguments"));
        assert!(build_err("Gelu").contains("column 1: unknown layer 'Gelu' (known: Linear"));
        assert!(
            build_err("ReLU, Parallel(3)")
                .contains("column 16: Parallel takes layers as its arguments")
        );
        assert!(build_err("Sequential()").contains("Sequential needs at least one layer"));
    }

    #[test]
    fn builds_with_pytorch_defaults() {
        let text = "Conv2d(3, 4, (3, 2), stride=(3, 1), padding=2), MaxPool2d(2), AvgPool2d((2, 1), stride=1), LeakyReLU, Softmax, Dropout, Flatten(1)";
        assert_eq!(
            reprs(text),
            [
                "Conv2d(3, 4, kernel_size=(3, 2), stride=(3, 1), padding=(2, 2))",
                "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)",
                "AvgPool2d(kernel_size=(2, 1), stride=1, padding=0)",
                "LeakyReLU(negative_slope=0.01)",
                "Softmax(dim=1)",
                "Dropout(p=0.5, inplace=False)",
                "Flatten(start_dim=1, end_dim=-1)",
            ]
        );
        let text = "GELU, GELU(approximate='tanh'), SiLU, ELU, ELU(alpha=0.5), Identity(), Dropout2d(0.25), AdaptiveAvgPool2d(1), AdaptiveAvgPool2d((2, 3))";
        // As PyTorch 2.15 prints them.
        assert_eq!(
            reprs(text),
            [
                "GELU(approximate='none')",
                "GELU(approximate='tanh')",
                "SiLU()",
                "ELU(alpha=1.0)",
                "ELU(alpha=0.5)",
                "Identity()",
                "Dropout2d(p=0.25, inplace=False)",
                "AdaptiveAvgPool2d(output_size=1)",
                "AdaptiveAvgPool2d(output_size=(2, 3))",
            ]
        );
        assert!(
            build_err("GELU(approximate='erf')").contains("'approximate' must be 'none' or 'tanh'")
        );
        assert!(
            build_err("GELU(approximate='tanh)").contains("a string opened with ' is not closed")
        );
        assert!(
            build_err("AdaptiveAvgPool2d(0)").contains("'output_size' must be a positive integer")
        );
    }

    #[test]
    fn builds_sequence_layers() {
        let text = "Embedding(50, 8, padding_idx=0), Select(1, -1), Embedding(4, 2)";
        assert_eq!(
            reprs(text),
            [
                "Embedding(50, 8, padding_idx=0)",
                "Select(dim=1, index=-1)",
                "Embedding(4, 2)"
            ]
        );
        assert!(build_err("Embedding(5, 2, padding_idx=7)").contains("padding_idx 7"));
        assert!(build_err("Select(1)").contains("index"));
    }

    #[test]
    fn builds_recurrent_layers_with_pytorch_signatures() {
        let text = "RNN(3, 4, 2, 'relu', False), LSTM(3, 5, bidirectional=True, batch_first=True), \
                    GRU(input_size=2, hidden_size=3, num_layers=2, dropout=0)";
        assert_eq!(
            reprs(text),
            [
                "RNN(3, 4, num_layers=2, nonlinearity='relu', bias=False, batch_first=True)",
                "LSTM(3, 5, batch_first=True, bidirectional=True)",
                "GRU(2, 3, num_layers=2, batch_first=True)",
            ]
        );
        let one_line = |text: &str, want: &str| {
            let e = build_err(text);
            assert!(e.contains(want) && !e.contains('\n'), "{text}: {e}");
        };
        one_line(
            "LSTM(3, 4, batch_first=False)",
            "column 12: LSTM: 'batch_first' must be True: scratchnet is always batch-first",
        );
        one_line(
            "RNN(3, 4, nonlinearity='sigmoid')",
            "RNN: 'nonlinearity' must be 'tanh' or 'relu'",
        );
        one_line(
            "GRU(3, 4, nonlinearity='relu')",
            "GRU has no argument 'nonlinearity'",
        );
        one_line("GRU(3, 4, dropout=0.5)", "'dropout' must be 0");
        one_line("LSTM(3, 4, proj_size=2)", "'proj_size' must be 0");
        one_line("RNN(3, 0)", "'hidden_size' must be a positive integer");
        one_line("Lstm(3, 4)", "known: Linear");
        one_line("LSTM(100000, 100000)", "past 268435456 parameters");
    }
}
