//! AMF0 and AMF3 in RTMP command and data messages.
//!
//! Values are the [`amf`] crate's: [`Value`] is an AMF0 value, and
//! `Value::AvmPlus` holds an AMF3 value after the AVM+ switch marker 0x11 (AMF0
//! specification §2.17, AMF3 specification §4.1). A command message (RTMP spec §7.1.1)
//! is a sequence of AMF0 values: name, transaction id, command object, arguments. Type
//! 20 carries them as they are; type 17 ("AMF3 command") puts a 0x00 format byte in
//! front, and any value may switch to AMF3. Data messages are types 18 and 15 alike.
//!
//! The `amf` decoder allocates lengths before reading them, recurses without a depth
//! limit and copies every reference. So every payload is first **checked** by a small
//! walker here: lengths must fit in the payload, nesting stays within
//! [`MAX_DEPTH`] and the value tree, with references expanded, stays within
//! [`MAX_EXPANDED`] bytes. Only then does the crate decode it. Encoding is checked the
//! same way against the crate's size asserts, so neither direction can panic.

use ::amf::amf0;
use ::amf::error::DecodeError;

pub use ::amf::Pair;
pub use ::amf::amf0::Value;
pub use ::amf::amf3::Value as Amf3Value;

/// Deepest nesting accepted, references expanded.
pub const MAX_DEPTH: usize = 64;
/// Largest decoded size accepted for one message, references expanded (approximate
/// bytes: string lengths plus a fixed cost per value).
pub const MAX_EXPANDED: usize = 64 * 1024 * 1024;
/// Approximate in-memory cost of one value node.
const NODE: usize = 64;

/// Malformed or unacceptable AMF.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AmfError {
    /// The payload ends inside a value.
    #[error("AMF value cut short")]
    Truncated,
    /// A marker, reference or string the decoder does not accept.
    #[error("malformed AMF: {0}")]
    Malformed(String),
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("AMF nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    /// Expands beyond [`MAX_EXPANDED`].
    #[error("AMF value expands beyond {MAX_EXPANDED} bytes")]
    TooLarge,
    /// Not a command message: wrong type or no name.
    #[error("not a command: {0}")]
    NotACommand(&'static str),
    /// API misuse: a value the AMF encodings cannot represent.
    #[error("cannot encode: {0}")]
    Unencodable(&'static str),
}

impl From<DecodeError> for AmfError {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::Io(ref io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                AmfError::Truncated
            }
            e => AmfError::Malformed(e.to_string()),
        }
    }
}

/// `NetConnection.objectEncoding`: how the client wants commands encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ObjectEncoding {
    /// 0: commands as type 20.
    #[default]
    Amf0,
    /// 3: commands as type 17 (0x00 byte, then AMF0 values that may switch to AMF3).
    Amf3,
}

impl ObjectEncoding {
    /// 0 → AMF0, 3 → AMF3, anything else `None`.
    pub fn from_number(n: f64) -> Option<ObjectEncoding> {
        if n == 0.0 {
            Some(ObjectEncoding::Amf0)
        } else if n == 3.0 {
            Some(ObjectEncoding::Amf3)
        } else {
            None
        }
    }

    /// The number in `objectEncoding`.
    pub fn as_number(self) -> f64 {
        match self {
            ObjectEncoding::Amf0 => 0.0,
            ObjectEncoding::Amf3 => 3.0,
        }
    }

    /// Message type for commands in this encoding.
    pub fn command_type(self) -> u8 {
        match self {
            ObjectEncoding::Amf0 => crate::chunk::msg_type::COMMAND_AMF0,
            ObjectEncoding::Amf3 => crate::chunk::msg_type::COMMAND_AMF3,
        }
    }

    /// Message type for data in this encoding.
    pub fn data_type(self) -> u8 {
        match self {
            ObjectEncoding::Amf0 => crate::chunk::msg_type::DATA_AMF0,
            ObjectEncoding::Amf3 => crate::chunk::msg_type::DATA_AMF3,
        }
    }
}

/// A command message: `name`, transaction id, command object, arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// Command name, e.g. `connect`, `createStream`, `invite`.
    pub name: String,
    /// Transaction id; 0 when no answer is expected.
    pub transaction_id: f64,
    /// Command object (`null` for most commands but `connect`).
    pub command_object: Value,
    /// Further arguments.
    pub args: Vec<Value>,
}

impl Command {
    /// A command with the given parts.
    pub fn new(
        name: impl Into<String>,
        transaction_id: f64,
        command_object: Value,
        args: Vec<Value>,
    ) -> Command {
        Command {
            name: name.into(),
            transaction_id,
            command_object,
            args,
        }
    }

    /// Decodes a type 20 or type 17 message body. Values stay as sent (see
    /// [`normalize`] to fold AMF3 values into AMF0 ones). A missing transaction id reads
    /// as 0 and a missing command object as `null`.
    pub fn decode(type_id: u8, payload: &[u8]) -> Result<Command, AmfError> {
        let body = match type_id {
            crate::chunk::msg_type::COMMAND_AMF0 => payload,
            crate::chunk::msg_type::COMMAND_AMF3 => strip_format_byte(payload),
            _ => return Err(AmfError::NotACommand("not a command message type")),
        };
        let mut values = decode_values(body)?.into_iter();
        let name = values
            .next()
            .and_then(|v| v.try_as_str().map(str::to_owned))
            .ok_or(AmfError::NotACommand("no command name"))?;
        let transaction_id = values.next().and_then(|v| v.try_as_f64()).unwrap_or(0.0);
        let command_object = values.next().unwrap_or(Value::Null);
        Ok(Command {
            name,
            transaction_id,
            command_object,
            args: values.collect(),
        })
    }

    /// Encodes the command for a client using `encoding`: returns the message type and
    /// body (type 17 bodies start with the 0x00 format byte).
    pub fn encode(&self, encoding: ObjectEncoding) -> Result<(u8, Vec<u8>), AmfError> {
        let mut out = Vec::new();
        if encoding == ObjectEncoding::Amf3 {
            out.push(0);
        }
        encode_value(&Value::String(self.name.clone()), &mut out)?;
        encode_value(&Value::Number(self.transaction_id), &mut out)?;
        encode_value(&self.command_object, &mut out)?;
        for a in &self.args {
            encode_value(a, &mut out)?;
        }
        Ok((encoding.command_type(), out))
    }
}

/// Decodes a data message body (type 18, or type 15 with its 0x00 format byte).
pub fn decode_data(type_id: u8, payload: &[u8]) -> Result<Vec<Value>, AmfError> {
    if type_id == crate::chunk::msg_type::DATA_AMF3 {
        decode_values(strip_format_byte(payload))
    } else {
        decode_values(payload)
    }
}

/// Encodes values as an AMF0 data message body (type 18).
pub fn encode_data(values: &[Value]) -> Result<Vec<u8>, AmfError> {
    let mut out = Vec::new();
    for v in values {
        encode_value(v, &mut out)?;
    }
    Ok(out)
}

fn strip_format_byte(payload: &[u8]) -> &[u8] {
    match payload.split_first() {
        Some((0, rest)) => rest,
        _ => payload,
    }
}

/// Decodes all AMF0 values in `payload` (one reference table for the whole body, as
/// AMF0 spec §4.1.3 says), after checking it.
pub fn decode_values(payload: &[u8]) -> Result<Vec<Value>, AmfError> {
    let mut check = Check::new(payload);
    while !check.done() {
        check.amf0(0)?;
    }
    let mut dec = amf0::Decoder::new(payload);
    let mut out = Vec::new();
    while !dec.inner().is_empty() {
        out.push(dec.decode()?);
    }
    Ok(out)
}

/// Appends the AMF0 encoding of `v`, after checking the `amf` encoder can write it.
pub fn encode_value(v: &Value, out: &mut Vec<u8>) -> Result<(), AmfError> {
    encodable0(v, 0)?;
    v.write_to(out)
        .map_err(|_| AmfError::Unencodable("write failed"))
}

/// Folds AMF3 values into their AMF0 equivalents where one exists (numbers, strings,
/// booleans, null/undefined, dates, XML, objects, arrays), recursively. Byte arrays,
/// vectors and dictionaries stay `AvmPlus`.
pub fn normalize(v: Value) -> Value {
    match v {
        Value::AvmPlus(a) => from_amf3(a),
        Value::Object {
            class_name,
            entries,
        } => Value::Object {
            class_name,
            entries: normalize_pairs(entries),
        },
        Value::EcmaArray { entries } => Value::EcmaArray {
            entries: normalize_pairs(entries),
        },
        Value::Array { entries } => Value::Array {
            entries: entries.into_iter().map(normalize).collect(),
        },
        other => other,
    }
}

fn normalize_pairs(entries: Vec<Pair<String, Value>>) -> Vec<Pair<String, Value>> {
    entries
        .into_iter()
        .map(|p| Pair {
            key: p.key,
            value: normalize(p.value),
        })
        .collect()
}

fn from_amf3(a: Amf3Value) -> Value {
    match a {
        Amf3Value::Undefined => Value::Undefined,
        Amf3Value::Null => Value::Null,
        Amf3Value::Boolean(b) => Value::Boolean(b),
        Amf3Value::Integer(i) => Value::Number(f64::from(i)),
        Amf3Value::Double(d) => Value::Number(d),
        Amf3Value::String(s) => Value::String(s),
        Amf3Value::XmlDocument(s) | Amf3Value::Xml(s) => Value::XmlDocument(s),
        Amf3Value::Date { unix_time } => Value::Date {
            unix_time,
            time_zone: 0,
        },
        Amf3Value::Array {
            assoc_entries,
            dense_entries,
        } => {
            if assoc_entries.is_empty() {
                Value::Array {
                    entries: dense_entries.into_iter().map(from_amf3).collect(),
                }
            } else {
                let mut entries: Vec<Pair<String, Value>> = assoc_entries
                    .into_iter()
                    .map(|p| Pair {
                        key: p.key,
                        value: from_amf3(p.value),
                    })
                    .collect();
                entries.extend(dense_entries.into_iter().enumerate().map(|(i, v)| Pair {
                    key: i.to_string(),
                    value: from_amf3(v),
                }));
                Value::EcmaArray { entries }
            }
        }
        Amf3Value::Object {
            class_name,
            entries,
            ..
        } => Value::Object {
            class_name,
            entries: entries
                .into_iter()
                .map(|p| Pair {
                    key: p.key,
                    value: from_amf3(p.value),
                })
                .collect(),
        },
        other => Value::AvmPlus(other),
    }
}

/// The string in `v` (AMF0, or AMF3 behind the switch).
pub fn as_str(v: &Value) -> Option<&str> {
    v.try_as_str()
}

/// The number in `v` (AMF0 number, or AMF3 integer/double behind the switch).
pub fn as_f64(v: &Value) -> Option<f64> {
    v.try_as_f64()
}

/// The boolean in `v`.
pub fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Boolean(b) | Value::AvmPlus(Amf3Value::Boolean(b)) => Some(*b),
        _ => None,
    }
}

/// Field `key` of an AMF0 object or ECMA array ([`normalize`] AMF3 objects first).
pub fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    match v {
        Value::Object { entries, .. } | Value::EcmaArray { entries } => {
            entries.iter().find(|p| p.key == key).map(|p| &p.value)
        }
        _ => None,
    }
}

/// An anonymous AMF0 object with the entries in order.
pub fn object<'a>(entries: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
    Value::Object {
        class_name: None,
        entries: entries
            .into_iter()
            .map(|(k, v)| Pair {
                key: k.to_owned(),
                value: v,
            })
            .collect(),
    }
}

/// An AMF0 string.
pub fn string(s: impl Into<String>) -> Value {
    Value::String(s.into())
}

/// An AMF0 number.
pub fn number(n: impl Into<f64>) -> Value {
    Value::Number(n.into())
}

// ---- encode checks: mirror the asserts in the `amf` encoders ----

const U16: usize = 0xFFFF;
const U28: usize = 1 << 28;

fn encodable0(v: &Value, depth: usize) -> Result<(), AmfError> {
    if depth > MAX_DEPTH {
        return Err(AmfError::Unencodable("nested too deep"));
    }
    let key = |k: &str| {
        if k.len() > U16 {
            Err(AmfError::Unencodable("AMF0 key longer than 65535 bytes"))
        } else {
            Ok(())
        }
    };
    let pairs = |entries: &[Pair<String, Value>]| -> Result<(), AmfError> {
        if entries.len() > u32::MAX as usize {
            return Err(AmfError::Unencodable("too many entries"));
        }
        for p in entries {
            key(&p.key)?;
            encodable0(&p.value, depth + 1)?;
        }
        Ok(())
    };
    match v {
        Value::String(s) | Value::XmlDocument(s) if s.len() > u32::MAX as usize => {
            Err(AmfError::Unencodable("string too long"))
        }
        Value::Object {
            class_name,
            entries,
        } => {
            if let Some(c) = class_name {
                key(c)?;
            }
            pairs(entries)
        }
        Value::EcmaArray { entries } => pairs(entries),
        Value::Array { entries } => {
            if entries.len() > u32::MAX as usize {
                return Err(AmfError::Unencodable("too many entries"));
            }
            entries.iter().try_for_each(|e| encodable0(e, depth + 1))
        }
        Value::AvmPlus(a) => encodable3(a, depth + 1),
        _ => Ok(()),
    }
}

fn encodable3(v: &Amf3Value, depth: usize) -> Result<(), AmfError> {
    if depth > MAX_DEPTH {
        return Err(AmfError::Unencodable("nested too deep"));
    }
    let size = |n: usize| {
        if n >= U28 {
            Err(AmfError::Unencodable("AMF3 length of 2^28 or more"))
        } else {
            Ok(())
        }
    };
    let pairs = |entries: &[Pair<String, Amf3Value>]| -> Result<(), AmfError> {
        for p in entries {
            size(p.key.len())?;
            encodable3(&p.value, depth + 1)?;
        }
        Ok(())
    };
    match v {
        Amf3Value::Integer(i) if !(-(1 << 28)..(1 << 28)).contains(i) => {
            Err(AmfError::Unencodable("AMF3 integer outside 29 bits"))
        }
        Amf3Value::String(s) | Amf3Value::XmlDocument(s) | Amf3Value::Xml(s) => size(s.len()),
        Amf3Value::ByteArray(b) => size(b.len()),
        Amf3Value::Array {
            assoc_entries,
            dense_entries,
        } => {
            size(dense_entries.len())?;
            pairs(assoc_entries)?;
            dense_entries
                .iter()
                .try_for_each(|e| encodable3(e, depth + 1))
        }
        Amf3Value::Object {
            class_name,
            sealed_count,
            entries,
        } => {
            if *sealed_count > entries.len() || *sealed_count >= U28 >> 3 {
                return Err(AmfError::Unencodable("bad AMF3 sealed member count"));
            }
            size(class_name.as_ref().map_or(0, String::len))?;
            pairs(entries)
        }
        Amf3Value::IntVector { entries, .. } => size(entries.len()),
        Amf3Value::UintVector { entries, .. } => size(entries.len()),
        Amf3Value::DoubleVector { entries, .. } => size(entries.len()),
        Amf3Value::ObjectVector {
            class_name,
            entries,
            ..
        } => {
            size(entries.len())?;
            size(class_name.as_ref().map_or(1, String::len))?;
            entries.iter().try_for_each(|e| encodable3(e, depth + 1))
        }
        Amf3Value::Dictionary { entries, .. } => {
            size(entries.len())?;
            entries.iter().try_for_each(|p| {
                encodable3(&p.key, depth + 1)?;
                encodable3(&p.value, depth + 1)
            })
        }
        _ => Ok(()),
    }
}

// ---- decode check: the same grammar as the `amf` decoders, without building values ----

/// Expanded size and height of a value, references included.
#[derive(Debug, Clone, Copy, Default)]
struct Cost {
    size: usize,
    height: usize,
}

impl Cost {
    fn add(&mut self, c: Cost) {
        self.size = self.size.saturating_add(c.size);
        self.height = self.height.max(c.height);
    }
}

#[derive(Default)]
struct Amf3Tables {
    strings: Vec<usize>,
    complexes: Vec<Option<Cost>>,
    /// (sealed member count, dynamic, cost of the names)
    traits: Vec<(usize, bool, usize)>,
}

struct Check<'a> {
    buf: &'a [u8],
    pos: usize,
    budget: usize,
    amf0_complexes: Vec<Option<Cost>>,
}

type Res<T> = Result<T, AmfError>;

impl<'a> Check<'a> {
    fn new(buf: &'a [u8]) -> Check<'a> {
        Check {
            buf,
            pos: 0,
            budget: MAX_EXPANDED,
            amf0_complexes: Vec::new(),
        }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn take(&mut self, n: usize) -> Res<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(AmfError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(AmfError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Res<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Res<usize> {
        let b = self.take(2)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    fn u32(&mut self) -> Res<usize> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn u29(&mut self) -> Res<usize> {
        let mut n = 0usize;
        for _ in 0..3 {
            let b = usize::from(self.u8()?);
            n = (n << 7) | (b & 0x7F);
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Ok((n << 8) | usize::from(self.u8()?))
    }

    fn charge(&mut self, n: usize) -> Res<()> {
        self.budget = self.budget.checked_sub(n).ok_or(AmfError::TooLarge)?;
        Ok(())
    }

    fn leaf(&mut self, bytes: usize) -> Res<Cost> {
        let size = NODE.saturating_add(bytes);
        self.charge(size)?;
        Ok(Cost { size, height: 1 })
    }

    /// A reference to a finished complex value: the decoder copies it.
    fn copy(&mut self, c: Option<Option<Cost>>) -> Res<Cost> {
        match c {
            Some(Some(c)) => {
                self.charge(c.size)?;
                Ok(c)
            }
            Some(None) => Err(AmfError::Malformed("circular reference".into())),
            None => Err(AmfError::Malformed("reference out of range".into())),
        }
    }

    /// A finished complex value: one node, plus the copy the decoder keeps in its
    /// reference table.
    fn finish(&mut self, inner: Cost) -> Res<Cost> {
        let c = Cost {
            size: NODE.saturating_add(inner.size),
            height: inner.height + 1,
        };
        if c.height > MAX_DEPTH {
            return Err(AmfError::TooDeep);
        }
        self.charge(NODE)?;
        self.charge(c.size)?;
        Ok(c)
    }

    fn amf0(&mut self, depth: usize) -> Res<Cost> {
        if depth > MAX_DEPTH {
            return Err(AmfError::TooDeep);
        }
        let marker = self.u8()?;
        match marker {
            0x00 => {
                self.take(8)?;
                self.leaf(0)
            }
            0x01 => {
                self.take(1)?;
                self.leaf(0)
            }
            0x02 => {
                let n = self.u16()?;
                self.take(n)?;
                self.leaf(n)
            }
            0x05 | 0x06 => self.leaf(0),
            0x07 => {
                let i = self.u16()?;
                self.copy(self.amf0_complexes.get(i).copied())
            }
            0x0B => {
                self.take(10)?;
                self.leaf(0)
            }
            0x0C | 0x0F => {
                let n = self.u32()?;
                self.take(n)?;
                self.leaf(n)
            }
            0x03 | 0x08 | 0x0A | 0x10 => {
                let index = self.amf0_complexes.len();
                self.amf0_complexes.push(None);
                let mut inner = Cost::default();
                match marker {
                    0x03 => inner.add(self.amf0_pairs(depth)?),
                    0x08 => {
                        self.take(4)?;
                        inner.add(self.amf0_pairs(depth)?);
                    }
                    0x10 => {
                        let n = self.u16()?;
                        self.take(n)?;
                        inner.size = n;
                        inner.add(self.amf0_pairs(depth)?);
                    }
                    _ => {
                        let count = self.u32()?;
                        for _ in 0..count {
                            inner.add(self.amf0(depth + 1)?);
                        }
                    }
                }
                let c = self.finish(inner)?;
                self.amf0_complexes[index] = Some(c);
                Ok(c)
            }
            0x11 => {
                // The decoder starts fresh AMF3 reference tables at every switch.
                let mut tables = Amf3Tables::default();
                let inner = self.amf3(depth + 1, &mut tables)?;
                let c = Cost {
                    size: NODE.saturating_add(inner.size),
                    height: inner.height + 1,
                };
                if c.height > MAX_DEPTH {
                    return Err(AmfError::TooDeep);
                }
                self.charge(NODE)?;
                Ok(c)
            }
            m => Err(AmfError::Malformed(format!("AMF0 marker {m:#04x}"))),
        }
    }

    fn amf0_pairs(&mut self, depth: usize) -> Res<Cost> {
        let mut acc = Cost::default();
        loop {
            let n = self.u16()?;
            self.take(n)?;
            if n == 0 && self.buf.get(self.pos) == Some(&0x09) {
                self.pos += 1;
                return Ok(acc);
            }
            self.charge(NODE + n)?;
            acc.add(Cost {
                size: NODE + n,
                height: 0,
            });
            acc.add(self.amf0(depth + 1)?);
        }
    }

    /// An AMF3 string (UTF-8-vr): returns the length of the string the decoder builds.
    fn utf8_vr(&mut self, t: &mut Amf3Tables) -> Res<usize> {
        let u = self.u29()?;
        if u & 1 == 0 {
            let n = *t
                .strings
                .get(u >> 1)
                .ok_or_else(|| AmfError::Malformed("string reference out of range".into()))?;
            self.charge(n)?;
            Ok(n)
        } else {
            let n = u >> 1;
            self.take(n)?;
            if n > 0 {
                t.strings.push(n);
                self.charge(n)?;
            }
            self.charge(n)?;
            Ok(n)
        }
    }

    fn amf3(&mut self, depth: usize, t: &mut Amf3Tables) -> Res<Cost> {
        if depth > MAX_DEPTH {
            return Err(AmfError::TooDeep);
        }
        let marker = self.u8()?;
        match marker {
            0x00..=0x03 => self.leaf(0),
            0x04 => {
                self.u29()?;
                self.leaf(0)
            }
            0x05 => {
                self.take(8)?;
                self.leaf(0)
            }
            0x06 => {
                let n = self.utf8_vr(t)?;
                self.leaf(n)
            }
            0x07..=0x11 => {
                let u = self.u29()?;
                if u & 1 == 0 {
                    return self.copy(t.complexes.get(u >> 1).copied());
                }
                let u = u >> 1;
                let index = t.complexes.len();
                t.complexes.push(None);
                let inner = self.amf3_complex(marker, u, depth, t)?;
                let c = self.finish(inner)?;
                t.complexes[index] = Some(c);
                Ok(c)
            }
            m => Err(AmfError::Malformed(format!("AMF3 marker {m:#04x}"))),
        }
    }

    fn amf3_complex(
        &mut self,
        marker: u8,
        u: usize,
        depth: usize,
        t: &mut Amf3Tables,
    ) -> Res<Cost> {
        let mut inner = Cost::default();
        match marker {
            // XML document, XML, byte array: `u` bytes.
            0x07 | 0x0B | 0x0C => {
                self.take(u)?;
                inner.size = u;
            }
            // Date: a double.
            0x08 => {
                self.take(8)?;
            }
            // Array: associative part, then `u` dense values.
            0x09 => {
                inner.add(self.amf3_pairs(depth, t)?);
                for _ in 0..u {
                    inner.add(self.amf3(depth + 1, t)?);
                }
            }
            0x0A => {
                let (fields, dynamic, names) = if u & 1 == 0 {
                    *t.traits
                        .get(u >> 1)
                        .ok_or_else(|| AmfError::Malformed("trait reference out of range".into()))?
                } else if u & 2 != 0 {
                    return Err(AmfError::Malformed("externalizable AMF3 object".into()));
                } else {
                    let dynamic = u & 4 != 0;
                    let fields = u >> 3;
                    let mut names = self.utf8_vr(t)?;
                    for _ in 0..fields {
                        names = names.saturating_add(self.utf8_vr(t)?).saturating_add(NODE);
                    }
                    t.traits.push((fields, dynamic, names));
                    (fields, dynamic, names)
                };
                // The decoder copies the trait, then each field name into its entry.
                self.charge(names)?;
                self.charge(names)?;
                inner.size = names.saturating_mul(2);
                for _ in 0..fields {
                    inner.add(self.amf3(depth + 1, t)?);
                }
                if dynamic {
                    inner.add(self.amf3_pairs(depth, t)?);
                }
            }
            // Vectors of int, uint, double.
            0x0D..=0x0F => {
                self.take(1)?;
                let width = if marker == 0x0F { 8 } else { 4 };
                let n = u.checked_mul(width).ok_or(AmfError::Truncated)?;
                self.take(n)?;
                inner.size = n;
            }
            // Vector of objects.
            0x10 => {
                self.take(1)?;
                inner.size = self.utf8_vr(t)?;
                for _ in 0..u {
                    inner.add(self.amf3(depth + 1, t)?);
                }
            }
            // Dictionary.
            _ => {
                self.take(1)?;
                for _ in 0..u {
                    inner.add(self.amf3(depth + 1, t)?);
                    inner.add(self.amf3(depth + 1, t)?);
                }
            }
        }
        Ok(inner)
    }

    fn amf3_pairs(&mut self, depth: usize, t: &mut Amf3Tables) -> Res<Cost> {
        let mut acc = Cost::default();
        loop {
            let n = self.utf8_vr(t)?;
            if n == 0 {
                return Ok(acc);
            }
            acc.add(Cost { size: n, height: 0 });
            acc.add(self.amf3(depth + 1, t)?);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        string(x)
    }

    fn amf3_string(x: &str) -> Value {
        Value::AvmPlus(Amf3Value::String(x.to_owned()))
    }

    /// What a Flash Player sends for
    /// `nc.connect("rtmp://gw/sip/alice@example.com", "alice", "secret", "Alice", "wideband")`.
    fn flash_connect(encoding: f64) -> Command {
        Command::new(
            "connect",
            1.0,
            object([
                ("app", s("sip/alice@example.com")),
                ("flashVer", s("WIN 11,2,202,235")),
                ("swfUrl", s("http://example.com/VideoPhone.swf")),
                ("tcUrl", s("rtmp://gw/sip/alice@example.com")),
                ("fpad", Value::Boolean(false)),
                ("capabilities", number(239.0)),
                ("audioCodecs", number(3575.0)),
                ("videoCodecs", number(252.0)),
                ("videoFunction", number(1.0)),
                ("pageUrl", s("http://example.com/phone.html")),
                ("objectEncoding", number(encoding)),
            ]),
            vec![s("alice"), s("secret"), s("Alice"), s("wideband")],
        )
    }

    #[test]
    fn connect_amf0_round_trip() {
        let cmd = flash_connect(0.0);
        let (t, body) = cmd.encode(ObjectEncoding::Amf0).unwrap();
        assert_eq!(t, 20);
        assert_eq!(
            &body[..10],
            &[0x02, 0x00, 0x07, b'c', b'o', b'n', b'n', b'e', b'c', b't']
        );
        assert_eq!(
            &body[10..19],
            &[0x00, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0],
            "transaction id 1.0"
        );
        let back = Command::decode(t, &body).unwrap();
        assert_eq!(back, cmd);
        assert_eq!(
            as_str(get(&back.command_object, "app").unwrap()),
            Some("sip/alice@example.com")
        );
        let args: Vec<&str> = back.args.iter().filter_map(as_str).collect();
        assert_eq!(args, ["alice", "secret", "Alice", "wideband"]);
    }

    #[test]
    fn connect_amf3_form() {
        // Type 17: the 0x00 format byte, AMF0 name/id/object, arguments switched to AMF3.
        let mut cmd = flash_connect(3.0);
        cmd.args = ["alice", "secret", "Alice", "wideband"]
            .iter()
            .map(|a| amf3_string(a))
            .collect();
        let (t, body) = cmd.encode(ObjectEncoding::Amf3).unwrap();
        assert_eq!((t, body[0]), (17, 0));
        // The first argument: 0x11 switch, AMF3 string marker 6, U29 (5 << 1 | 1) = 0x0B.
        let alice = [0x11, 0x06, 0x0B, b'a', b'l', b'i', b'c', b'e'];
        assert!(body.windows(alice.len()).any(|w| w == alice));
        let back = Command::decode(t, &body).unwrap();
        assert_eq!(back, cmd);
        let args: Vec<Value> = back.args.into_iter().map(normalize).collect();
        assert_eq!(
            args,
            vec![s("alice"), s("secret"), s("Alice"), s("wideband")]
        );
        assert_eq!(
            get(&back.command_object, "objectEncoding").and_then(as_f64),
            Some(3.0)
        );
    }

    #[test]
    fn invite_type_17_with_avmplus_switch() {
        // Hand-assembled, as a Flash Player in AMF3 mode writes nc.call("invite", null,
        // "bob@example.com", "wideband", "dtmf"); rml_amf0 fails on the 0x11 markers.
        let mut body = vec![0x00];
        body.extend_from_slice(&[0x02, 0x00, 0x06]);
        body.extend_from_slice(b"invite");
        body.extend_from_slice(&[0x00, 0x40, 0x08, 0, 0, 0, 0, 0, 0]); // 3.0
        body.push(0x05); // null
        body.extend_from_slice(&[0x11, 0x06, 0x1F]); // AMF3 string of 15 bytes
        body.extend_from_slice(b"bob@example.com");
        body.extend_from_slice(&[0x11, 0x06, 0x11]);
        body.extend_from_slice(b"wideband");
        body.extend_from_slice(&[0x11, 0x06, 0x09]);
        body.extend_from_slice(b"dtmf");
        body.extend_from_slice(&[0x11, 0x04, 0x05]); // AMF3 integer 5
        let cmd = Command::decode(17, &body).unwrap();
        assert_eq!(cmd.name, "invite");
        assert_eq!(cmd.transaction_id, 3.0);
        assert_eq!(cmd.command_object, Value::Null);
        let args: Vec<Value> = cmd.args.into_iter().map(normalize).collect();
        assert_eq!(
            args,
            vec![s("bob@example.com"), s("wideband"), s("dtmf"), number(5.0)]
        );
    }

    #[test]
    fn amf3_references_and_objects() {
        // An AMF3 dynamic object {a: "x", b: "x" (string ref), c: [1, 2]} after the switch.
        let body = [
            0x11, 0x0A, 0x0B, 0x01, // object, dynamic, no sealed members, class ""
            0x03, b'a', 0x06, 0x03, b'x', // a: "x"
            0x03, b'b', 0x06, 0x02, // b: string ref 1 ("x"; ref 0 is "a")
            0x03, b'c', 0x09, 0x05, 0x01, 0x04, 0x01, 0x04, 0x02, // c: [1, 2]
            0x01, // end of dynamic members
        ];
        let v = decode_values(&body).unwrap();
        let n = normalize(v[0].clone());
        assert_eq!(
            n,
            object([
                ("a", s("x")),
                ("b", s("x")),
                (
                    "c",
                    Value::Array {
                        entries: vec![number(1.0), number(2.0)]
                    }
                ),
            ])
        );
    }

    #[test]
    fn data_messages() {
        let meta = [
            s("@setDataFrame"),
            s("onMetaData"),
            Value::EcmaArray {
                entries: vec![Pair {
                    key: "audiocodecid".into(),
                    value: number(11.0),
                }],
            },
        ];
        let body = encode_data(&meta).unwrap();
        assert_eq!(decode_data(18, &body).unwrap(), meta);
        let mut amf3 = vec![0];
        amf3.extend_from_slice(&body);
        assert_eq!(decode_data(15, &amf3).unwrap(), meta);
    }

    #[test]
    fn malformed_is_an_error() {
        assert_eq!(
            decode_values(&[0x02, 0x00, 0x05, b'a']),
            Err(AmfError::Truncated)
        );
        assert!(matches!(
            decode_values(&[0x04]),
            Err(AmfError::Malformed(_))
        ));
        assert!(matches!(
            decode_values(&[0x12]),
            Err(AmfError::Malformed(_))
        ));
        assert!(matches!(
            decode_values(&[0x07, 0x00, 0x00]),
            Err(AmfError::Malformed(_))
        ));
        // Long string claiming 4 GiB: refused before anything is allocated.
        assert_eq!(
            decode_values(&[0x0C, 0xFF, 0xFF, 0xFF, 0xFF, b'x']),
            Err(AmfError::Truncated)
        );
        // AMF3 byte array claiming 256 MiB.
        assert_eq!(
            decode_values(&[0x11, 0x0C, 0xFF, 0xFF, 0xFF, 0xFF]),
            Err(AmfError::Truncated)
        );
        // Object key without value, bad UTF-8.
        assert!(decode_values(&[0x03, 0x00, 0x01, b'k']).is_err());
        assert!(matches!(
            decode_values(&[0x02, 0x00, 0x01, 0xFF]),
            Err(AmfError::Malformed(_))
        ));
        // Not commands.
        assert_eq!(
            Command::decode(18, &[0x05]),
            Err(AmfError::NotACommand("not a command message type"))
        );
        assert_eq!(
            Command::decode(20, &[0x05]),
            Err(AmfError::NotACommand("no command name"))
        );
        assert_eq!(
            Command::decode(20, &[]),
            Err(AmfError::NotACommand("no command name"))
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut body = Vec::new();
        for _ in 0..10_000 {
            body.extend_from_slice(&[0x0A, 0, 0, 0, 1]);
        }
        body.push(0x05);
        assert_eq!(decode_values(&body), Err(AmfError::TooDeep));
        let mut body = vec![0x11];
        for _ in 0..10_000 {
            body.extend_from_slice(&[0x09, 0x03, 0x01]);
        }
        body.push(0x01);
        assert_eq!(decode_values(&body), Err(AmfError::TooDeep));
    }

    #[test]
    fn reference_bombs_are_refused() {
        // AMF0: a 60 KB string in an array, then arrays of references doubling in size.
        let mut body = vec![0x0A, 0, 0, 0, 1, 0x02, 0xEA, 0x60];
        body.extend(std::iter::repeat_n(b'x', 60_000));
        for i in 0..40u16 {
            body.extend_from_slice(&[0x0A, 0, 0, 0, 2, 0x07]);
            body.extend_from_slice(&i.to_be_bytes());
            body.push(0x07);
            body.extend_from_slice(&i.to_be_bytes());
        }
        assert_eq!(decode_values(&body), Err(AmfError::TooLarge));

        // AMF3: an array holding one 16 KiB string and 4999 two-byte references to it.
        let count: usize = 5000;
        let u = (count << 1) | 1;
        let mut body = vec![0x11, 0x09, 0x80 | (u >> 7) as u8, (u & 0x7F) as u8, 0x01];
        body.extend_from_slice(&[0x06, 0x82, 0x80, 0x01]); // (16384 << 1) | 1
        body.extend(std::iter::repeat_n(b'y', 1 << 14));
        for _ in 1..count {
            body.extend_from_slice(&[0x06, 0x00]);
        }
        assert_eq!(decode_values(&body), Err(AmfError::TooLarge));
    }

    #[test]
    fn encoding_checks_instead_of_panics() {
        let big_key = "k".repeat(70_000);
        let v = object([(big_key.as_str(), Value::Null)]);
        assert!(matches!(
            encode_value(&v, &mut Vec::new()),
            Err(AmfError::Unencodable(_))
        ));
        let v = Value::AvmPlus(Amf3Value::Integer(1 << 29));
        assert!(matches!(
            encode_value(&v, &mut Vec::new()),
            Err(AmfError::Unencodable(_))
        ));
        let v = Value::AvmPlus(Amf3Value::Object {
            class_name: None,
            sealed_count: 3,
            entries: vec![],
        });
        assert!(matches!(
            encode_value(&v, &mut Vec::new()),
            Err(AmfError::Unencodable(_))
        ));
        let long = "z".repeat(70_000);
        let mut out = Vec::new();
        encode_value(&s(&long), &mut out).unwrap();
        assert_eq!(out[0], 0x0C, "long string marker");
        assert_eq!(decode_values(&out).unwrap(), vec![s(&long)]);
    }

    #[test]
    fn amf0_references_decode() {
        // [obj, ref 1] where obj = {a: 1}; index 0 is the outer array itself.
        let body = [
            0x0A, 0, 0, 0, 2, 0x03, 0x00, 0x01, b'a', 0x00, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0, 0x00,
            0x00, 0x09, 0x07, 0x00, 0x01,
        ];
        let v = decode_values(&body).unwrap();
        let Value::Array { entries } = &v[0] else {
            panic!()
        };
        assert_eq!(entries[0], entries[1]);
        // A reference to the array being decoded is circular.
        let body = [0x0A, 0, 0, 0, 1, 0x07, 0x00, 0x00];
        assert!(matches!(decode_values(&body), Err(AmfError::Malformed(_))));
    }
}
