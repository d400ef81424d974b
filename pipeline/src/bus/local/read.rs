//! Reads of a partition: from where a recent read stopped, else from the
//! sparse index, frame by frame up to the visible end. Open scanned every
//! frame, so one that does not read now was damaged since: an error, never a
//! shorter read.

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};

use super::frame::{BadFrame, FrameRead, read_frame};
use super::io;
use super::partition::PartitionLog;
use crate::bus::{BusError, Record};

/// A record's size on disk, near enough, for sizing a read's buffer: FSE
/// events are about 1 KiB with their frame.
const READ_BYTES_PER_RECORD: usize = 2 * 1024;

/// Read positions remembered per partition (one per recent reader).
const RESUME_POINTS: usize = 16;

/// Where a read is: a segment, a byte position in it, and the offset of the
/// record that starts there.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    segment: usize,
    position: u64,
    expected: u64,
}

/// What a read asks for: records of `topic/partition` from `from`, at most
/// `max`, below `end` (the visible end when it started).
struct Request<'a> {
    topic: &'a str,
    partition: u32,
    from: u64,
    max: usize,
    end: u64,
}

impl Request<'_> {
    fn damaged(&self, log: &PartitionLog, at: &Cursor, bad: BadFrame) -> BusError {
        BusError::Corrupt(format!(
            "topic {} partition {}: segment {}: record {} at byte {} \
             does not read ({bad}); the segment was damaged after the partition was opened",
            self.topic,
            self.partition,
            log.segments[at.segment].path.display(),
            at.expected,
            at.position
        ))
    }
}

impl PartitionLog {
    /// Records from `from`, at most `max`, up to the visible end.
    pub(super) fn read(
        &mut self,
        topic: &str,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<Record>, BusError> {
        let end = self.visible_end;
        if from >= end || max == 0 {
            return Ok(Vec::new());
        }
        let request = Request {
            topic,
            partition,
            from,
            max,
            end,
        };
        let mut at = self.start(from);
        let mut out = Vec::new();
        loop {
            let at_end = self.read_segment(&request, &mut at, &mut out)?;
            // At the end of a segment: the next one, if any (the last one
            // is kept, so that a resume point stays in it for what comes).
            if at_end || out.len() >= max || at.segment + 1 >= self.segments.len() {
                break;
            }
            at = Cursor {
                segment: at.segment + 1,
                position: 0,
                expected: self.segments[at.segment + 1].base,
            };
        }
        if let Some(last) = out.last() {
            self.remember(last.offset + 1, at);
        }
        Ok(out)
    }

    /// Where a read from `from` starts: where a read stopped at `from`, else
    /// the last index entry at or before it, else the segment's start.
    fn start(&self, from: u64) -> Cursor {
        let segment = self
            .segments
            .partition_point(|s| s.base <= from)
            .saturating_sub(1);
        if let Some(&(_, segment, position)) = self.resume.iter().find(|(o, _, _)| *o == from) {
            return Cursor {
                segment,
                position,
                expected: from,
            };
        }
        match self
            .index
            .iter()
            .rev()
            .find(|(o, s, _)| *o <= from && *s == segment)
        {
            Some(&(offset, _, position)) => Cursor {
                segment,
                position,
                expected: offset,
            },
            None => Cursor {
                segment,
                position: 0,
                expected: self.segments.get(segment).map_or(0, |s| s.base),
            },
        }
    }

    /// Reads `at`'s segment from `at` on into `out`, up to the request's
    /// bounds, moving `at` past each record read; true at the visible end.
    fn read_segment(
        &self,
        request: &Request<'_>,
        at: &mut Cursor,
        out: &mut Vec<Record>,
    ) -> Result<bool, BusError> {
        let segment = &self.segments[at.segment];
        let segment_end = segment.end.min(request.end);
        let context = || segment.path.display().to_string();
        let mut file = File::open(&segment.path).map_err(|e| io(context())(e))?;
        file.seek(SeekFrom::Start(at.position))
            .map_err(io("seek"))?;
        // Sized for what is asked: a read of one or two records (a consumer
        // at the tail at a low rate, a replayed checkpoint) would otherwise
        // copy 64 KiB from the page cache for 2.
        let capacity = request
            .max
            .saturating_mul(READ_BYTES_PER_RECORD)
            .clamp(4 * 1024, 64 * 1024);
        let mut reader = BufReader::with_capacity(capacity, file);
        while out.len() < request.max {
            let (offset, timestamp, key, value, size) =
                match read_frame(&mut reader).map_err(|e| io(context())(e))? {
                    FrameRead::Frame(frame)
                        if frame.0 == at.expected || (self.gaps && frame.0 > at.expected) =>
                    {
                        frame
                    }
                    FrameRead::Frame((offset, ..)) => {
                        return Err(request.damaged(self, at, BadFrame::Offset(offset)));
                    }
                    FrameRead::Bad(bad) if at.expected < segment_end => {
                        return Err(request.damaged(self, at, bad));
                    }
                    FrameRead::End if at.expected < segment_end => {
                        return Err(request.damaged(self, at, BadFrame::Short));
                    }
                    FrameRead::End | FrameRead::Bad(_) => break,
                };
            if offset >= request.end {
                return Ok(true);
            }
            at.position += size;
            at.expected = offset + 1;
            if offset >= request.from {
                out.push(Record {
                    topic: request.topic.to_string(),
                    partition: request.partition,
                    offset,
                    timestamp_millis: timestamp,
                    key,
                    tombstone: value.is_none(),
                    value: value.unwrap_or_default(),
                });
            }
        }
        Ok(false)
    }

    /// Remembers that a read stopped at `at`, before record `next`.
    fn remember(&mut self, next: u64, at: Cursor) {
        if self.resume.len() >= RESUME_POINTS {
            self.resume.remove(0);
        }
        self.resume.retain(|(o, _, _)| *o != next);
        self.resume.push((next, at.segment, at.position));
    }
}
