//! Refuses NaN and infinity in job arguments before they are enqueued.
//!
//! JSON has no such numbers: serde_json writes them as `null`, which the
//! worker cannot decode as an `f64`, so the job would be enqueued fine and
//! buried on arrival. [`check`] walks the arguments once with a serializer
//! that writes nothing and stops at the first non-finite float, naming
//! where it is (`price`, `lines[2].amount`).

use serde::ser::{self, Serialize};
use std::fmt;

/// Where the first non-finite float is, and what it is.
#[derive(Debug)]
pub(crate) struct NonFinite {
    /// Path of the value in the arguments, such as `lines[2].amount`.
    pub(crate) path: String,
    /// `NaN`, `inf` or `-inf`.
    pub(crate) value: String,
}

/// `Ok(())` when every float in `value` is finite (or when `value` cannot be
/// serialized at all: serialization itself reports that).
pub(crate) fn check<T: Serialize + ?Sized>(value: &T) -> Result<(), NonFinite> {
    let mut path = Vec::new();
    match value.serialize(Check { path: &mut path }) {
        Err(Stop(Some(found))) => Err(found),
        _ => Ok(()),
    }
}

/// Why the walk stopped: a non-finite float, or an error of the value's own
/// `Serialize` impl (`None`).
#[derive(Debug)]
struct Stop(Option<NonFinite>);

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stopped")
    }
}

impl std::error::Error for Stop {}

impl ser::Error for Stop {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Stop(None)
    }
}

struct Check<'a> {
    path: &'a mut Vec<String>,
}

impl Check<'_> {
    fn float(self, v: f64) -> Result<(), Stop> {
        if v.is_finite() {
            return Ok(());
        }
        let mut path = String::new();
        for seg in self.path.iter() {
            if !path.is_empty() && !seg.starts_with('[') {
                path.push('.');
            }
            path.push_str(seg);
        }
        Err(Stop(Some(NonFinite {
            path,
            value: format!("{v}"),
        })))
    }
}

/// A sequence, tuple, map or struct being walked.
struct Compound<'a> {
    path: &'a mut Vec<String>,
    index: usize,
}

impl Compound<'_> {
    fn visit<T: Serialize + ?Sized>(&mut self, seg: String, value: &T) -> Result<(), Stop> {
        self.path.push(seg);
        let r = value.serialize(Check {
            path: &mut *self.path,
        });
        self.path.pop();
        r
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Stop> {
        let seg = format!("[{}]", self.index);
        self.index += 1;
        self.visit(seg, value)
    }
}

macro_rules! ignore {
    ($($method:ident($ty:ty)),* $(,)?) => {
        $(fn $method(self, _: $ty) -> Result<(), Stop> { Ok(()) })*
    };
}

impl<'a> ser::Serializer for Check<'a> {
    type Ok = ();
    type Error = Stop;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    ignore!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_unit_struct(&'static str),
    );

    fn serialize_f32(self, v: f32) -> Result<(), Stop> {
        self.float(f64::from(v))
    }

    fn serialize_f64(self, v: f64) -> Result<(), Stop> {
        self.float(v)
    }

    fn serialize_none(self) -> Result<(), Stop> {
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Stop> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Stop> {
        Ok(())
    }

    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Stop> {
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Stop> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Stop> {
        Compound {
            path: self.path,
            index: 0,
        }
        .visit(variant.to_owned(), value)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Compound<'a>, Stop> {
        Ok(Compound {
            path: self.path,
            index: 0,
        })
    }

    fn serialize_tuple(self, len: usize) -> Result<Compound<'a>, Stop> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Compound<'a>, Stop> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, Stop> {
        self.serialize_seq(Some(len))
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Compound<'a>, Stop> {
        self.serialize_seq(len)
    }

    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Compound<'a>, Stop> {
        self.serialize_seq(Some(len))
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, Stop> {
        self.serialize_seq(Some(len))
    }
}

impl ser::SerializeSeq for Compound<'_> {
    type Ok = ();
    type Error = Stop;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Stop> {
        self.element(value)
    }
    fn end(self) -> Result<(), Stop> {
        Ok(())
    }
}

impl ser::SerializeTuple for Compound<'_> {
    type Ok = ();
    type Error = Stop;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Stop> {
        self.element(value)
    }
    fn end(self) -> Result<(), Stop> {
        Ok(())
    }
}

impl ser::SerializeTupleStruct for Compound<'_> {
    type Ok = ();
    type Error = Stop;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Stop> {
        self.element(value)
    }
    fn end(self) -> Result<(), Stop> {
        Ok(())
    }
}

impl ser::SerializeTupleVariant for Compound<'_> {
    type Ok = ();
    type Error = Stop;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Stop> {
        self.element(value)
    }
    fn end(self) -> Result<(), Stop> {
        Ok(())
    }
}

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = Stop;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, _: &T) -> Result<(), Stop> {
        // serde_json refuses float keys itself.
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Stop> {
        self.visit("[<key>]".to_owned(), value)
    }
    fn end(self) -> Result<(), Stop> {
        Ok(())
    }
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = Stop;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Stop> {
        self.visit(key.to_owned(), value)
    }
    fn end(self) -> Result<(), Stop> {
        Ok(())
    }
}

impl ser::SerializeStructVariant for Compound<'_> {
    type Ok = ();
    type Error = Stop;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Stop> {
        self.visit(key.to_owned(), value)
    }
    fn end(self) -> Result<(), Stop> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(serde::Serialize)]
    struct Line {
        sku: String,
        amount: f64,
    }

    #[derive(serde::Serialize)]
    struct Args {
        customer: u64,
        lines: Vec<Line>,
        discount: Option<f32>,
        extra: BTreeMap<String, (u8, f64)>,
    }

    fn args() -> Args {
        Args {
            customer: 7,
            lines: vec![
                Line {
                    sku: "a".into(),
                    amount: 1.5,
                },
                Line {
                    sku: "b".into(),
                    amount: 2.0,
                },
            ],
            discount: Some(0.1),
            extra: BTreeMap::from([("k".to_owned(), (1, 0.5))]),
        }
    }

    #[test]
    fn finite_arguments_pass() {
        assert!(check(&args()).is_ok());
        assert!(check(&(1u8, "x", [0.0f64, -0.0, f64::MAX, f64::MIN_POSITIVE])).is_ok());
    }

    #[test]
    fn non_finite_floats_are_found_with_their_path() {
        let mut a = args();
        a.lines[1].amount = f64::NAN;
        let e = check(&a).unwrap_err();
        assert_eq!(
            (e.path.as_str(), e.value.as_str()),
            ("lines[1].amount", "NaN")
        );

        let mut a = args();
        a.discount = Some(f32::INFINITY);
        let e = check(&a).unwrap_err();
        assert_eq!((e.path.as_str(), e.value.as_str()), ("discount", "inf"));

        let mut a = args();
        a.extra.insert("z".into(), (2, f64::NEG_INFINITY));
        let e = check(&a).unwrap_err();
        assert_eq!(
            (e.path.as_str(), e.value.as_str()),
            ("extra[<key>][1]", "-inf")
        );
    }
}
