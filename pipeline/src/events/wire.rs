//! The bus's partitions and offsets as the events carry them: Avro `int`
//! and `long`, where the bus counts in `u32` and `u64`. Each is converted
//! once, here, and asserted rather than clamped: no bus makes a partition
//! past `i32::MAX` (Kafka's are `i32`; the local log creates at most a few
//! hundred) nor an offset past `i64::MAX` (Kafka's are `i64`; the local log
//! would need 2^63 appends), so a value out of range is a bug, and a clamp
//! would stamp a wrong number into an audited event.

/// A partition number on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct WirePartition(i32);

impl From<u32> for WirePartition {
    fn from(partition: u32) -> WirePartition {
        match i32::try_from(partition) {
            Ok(p) => WirePartition(p),
            Err(_) => panic!("partition {partition} is past the wire's int"),
        }
    }
}

impl From<WirePartition> for i32 {
    fn from(partition: WirePartition) -> i32 {
        partition.0
    }
}

/// An offset, a position or a count of records on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct WireOffset(i64);

impl From<u64> for WireOffset {
    fn from(offset: u64) -> WireOffset {
        match i64::try_from(offset) {
            Ok(o) => WireOffset(o),
            Err(_) => panic!("offset {offset} is past the wire's long"),
        }
    }
}

impl From<usize> for WireOffset {
    fn from(count: usize) -> WireOffset {
        WireOffset::from(count as u64)
    }
}

impl From<u32> for WireOffset {
    fn from(ordinal: u32) -> WireOffset {
        WireOffset(i64::from(ordinal))
    }
}

impl From<WireOffset> for i64 {
    fn from(offset: WireOffset) -> i64 {
        offset.0
    }
}

/// The wire's `int` of a bus partition.
pub fn partition(partition: u32) -> i32 {
    WirePartition::from(partition).into()
}

/// The wire's `long` of a bus offset, position or count.
pub fn offset(offset: impl Into<WireOffset>) -> i64 {
    offset.into().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_in_range_convert_unchanged() {
        assert_eq!(partition(0), 0);
        assert_eq!(partition(i32::MAX as u32), i32::MAX);
        assert_eq!(offset(i64::MAX as u64), i64::MAX);
        assert_eq!(offset(7usize), 7);
    }

    #[test]
    #[should_panic(expected = "past the wire's int")]
    fn a_partition_past_the_int_is_a_bug_not_a_clamp() {
        partition(i32::MAX as u32 + 1);
    }

    #[test]
    #[should_panic(expected = "past the wire's long")]
    fn an_offset_past_the_long_is_a_bug_not_a_clamp() {
        offset(u64::MAX);
    }
}
