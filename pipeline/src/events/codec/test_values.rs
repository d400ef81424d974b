//! Test only: the apache-avro `Value` of the primitive field types.

use apache_avro::types::Value;
use chrono::NaiveDate;

use super::{AvroEnum, ToAvroValue, date_to_days};

impl ToAvroValue for i32 {
    fn to_avro_value(&self) -> Value {
        Value::Int(*self)
    }
}
impl ToAvroValue for i64 {
    fn to_avro_value(&self) -> Value {
        Value::Long(*self)
    }
}
impl ToAvroValue for bool {
    fn to_avro_value(&self) -> Value {
        Value::Boolean(*self)
    }
}
impl ToAvroValue for String {
    fn to_avro_value(&self) -> Value {
        Value::String(self.clone())
    }
}
impl ToAvroValue for Vec<u8> {
    fn to_avro_value(&self) -> Value {
        Value::Bytes(self.clone())
    }
}
impl ToAvroValue for [u8; 32] {
    fn to_avro_value(&self) -> Value {
        Value::Fixed(32, self.to_vec())
    }
}
impl ToAvroValue for NaiveDate {
    fn to_avro_value(&self) -> Value {
        Value::Date(date_to_days(*self))
    }
}
impl<T: ToAvroValue> ToAvroValue for Option<T> {
    fn to_avro_value(&self) -> Value {
        match self {
            None => Value::Union(0, Box::new(Value::Null)),
            Some(v) => Value::Union(1, Box::new(v.to_avro_value())),
        }
    }
}
impl<T: ToAvroValue> ToAvroValue for Vec<T> {
    fn to_avro_value(&self) -> Value {
        Value::Array(self.iter().map(ToAvroValue::to_avro_value).collect())
    }
}

pub(crate) fn enum_value<E: AvroEnum>(e: E) -> Value {
    Value::Enum(e.index(), e.symbol().to_owned())
}
