//! The power-loss fault mode of the local log: what a machine losing power
//! would leave on disk, made by the program itself.
//!
//! A SIGKILL keeps the page cache, so a killed process loses only what it
//! had not written yet; a power loss also loses what was written but not
//! fsynced. With [`CRASH_IMAGE_ENV`] set (`CLEARING_FAULT_CRASH_IMAGE=1`),
//! the log records in a journal beside its files (`.crash-journal`) what
//! each fsync made durable: a file's data up to a length and its size
//! (preallocated space included), and a directory's entries. After the
//! processes are killed, [`apply`] turns the directory into its crash
//! image: every file the journal names cut to its last synced length (its
//! preallocated space reading as zeros again), every entry created but
//! never made durable by an fsync of its directory removed. Files the
//! journal never names (written before the mode was on) are taken as
//! durable as they are. Off by default; off, it costs the log one branch
//! on an `Option` per fsync.
//!
//! The crash image is the pessimistic one (nothing unsynced survives), or,
//! given a seed, one where each file keeps a random prefix of what was
//! written past its last sync: a real file system may write back part of
//! the page cache before the power goes, and a torn frame or whole
//! unacknowledged records may then be found at the next open.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{BusError, io};

/// The environment variable that turns the fault mode on (any value but
/// empty or `0`), for the local log and the sled stores alike.
pub const CRASH_IMAGE_ENV: &str = "CLEARING_FAULT_CRASH_IMAGE";

/// The journal's file name, in the log's directory.
pub const JOURNAL: &str = ".crash-journal";

/// Whether the fault mode is on in this process (read once).
pub fn crash_image_mode() -> bool {
    static MODE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *MODE.get_or_init(|| {
        std::env::var_os(CRASH_IMAGE_ENV).is_some_and(|v| !v.is_empty() && v != "0")
    })
}

/// What fsyncs made durable, appended as they return (one line each, so
/// a kill mid-line leaves a line without its newline, which [`apply`]
/// ignores). A record follows its fsync, and an acknowledgement follows
/// the record: whatever was acknowledged is in the journal.
pub struct Journal {
    root: PathBuf,
    file: Mutex<File>,
}

impl Journal {
    pub fn open(root: &Path) -> Result<Journal, BusError> {
        let path = root.join(JOURNAL);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(path.display().to_string()))?;
        Ok(Journal {
            root: root.to_path_buf(),
            file: Mutex::new(file),
        })
    }

    fn relative<'p>(&self, path: &'p Path) -> &'p Path {
        path.strip_prefix(&self.root).unwrap_or(path)
    }

    fn line(&self, line: String) -> Result<(), BusError> {
        let mut file = super::lock(&self.file);
        file.write_all(line.as_bytes())
            .map_err(io(format!("{JOURNAL}: writing")))
    }

    /// A file or directory was created: its entry is durable once its
    /// directory is synced.
    pub fn created(&self, path: &Path) -> Result<(), BusError> {
        self.line(format!("C\t{}\n", self.relative(path).display()))
    }

    /// A directory was synced: the entries created in it so far are durable.
    pub fn dir_synced(&self, dir: &Path) -> Result<(), BusError> {
        self.line(format!("D\t{}\n", self.relative(dir).display()))
    }

    /// A file was synced: its first `data` bytes are durable, and its size
    /// is `size` (more than `data` where space is preallocated).
    pub fn synced(&self, path: &Path, data: u64, size: u64) -> Result<(), BusError> {
        self.line(format!(
            "S\t{data}\t{size}\t{}\n",
            self.relative(path).display()
        ))
    }
}

/// What [`apply`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrashImage {
    /// Files cut back to what was synced, and the bytes written past
    /// that (up to the last nonzero byte: preallocated zeros not counted).
    pub files_cut: usize,
    pub bytes_cut: u64,
    /// Entries removed because no directory fsync made them durable.
    pub entries_removed: usize,
}

/// What the journal says of one path.
#[derive(Default)]
struct Durable {
    /// The last (data, size) synced.
    synced: Option<(u64, u64)>,
    /// The journal line of its last creation, if it was created.
    created: Option<usize>,
}

/// What the journal says: per path, its last sync and creation; per
/// directory, the line of its last sync.
struct Journaled {
    paths: BTreeMap<PathBuf, Durable>,
    dirs: BTreeMap<PathBuf, usize>,
}

/// Reads the journal.
fn read_journal(root: &Path) -> Result<Journaled, BusError> {
    let path = root.join(JOURNAL);
    let text = match fs::read(&path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io(path.display().to_string())(e)),
    };
    let mut paths: BTreeMap<PathBuf, Durable> = BTreeMap::new();
    let mut dirs: BTreeMap<PathBuf, usize> = BTreeMap::new();
    // Only whole lines: the last one may have been cut by the kill.
    let whole = text.rfind('\n').map_or("", |end| &text[..end]);
    for (n, line) in whole.lines().enumerate() {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["C", p] => paths.entry(root.join(p)).or_default().created = Some(n),
            ["D", p] => {
                dirs.insert(root.join(p), n);
            }
            ["S", data, size, p] => {
                let (Ok(data), Ok(size)) = (data.parse(), size.parse()) else {
                    return Err(BusError::Corrupt(format!(
                        "{JOURNAL}: line {}: {line}",
                        n + 1
                    )));
                };
                paths.entry(root.join(p)).or_default().synced = Some((data, size));
            }
            _ => {
                return Err(BusError::Corrupt(format!(
                    "{JOURNAL}: line {}: {line}",
                    n + 1
                )));
            }
        }
    }
    Ok(Journaled { paths, dirs })
}

/// xorshift64*, for the seeded image's choices.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// Turns the log directory `root` into what a power loss at this instant
/// would leave, from its journal, then empties the journal: what is on
/// disk now is all there is. Run it only while no process has the log
/// open. With `seed`, each file keeps a random prefix of its unsynced
/// bytes and an entry never made durable survives half of the time (its
/// data as synced), as a file system that wrote part of its cache back
/// would leave them.
pub fn apply(root: &Path, seed: Option<u64>) -> Result<CrashImage, BusError> {
    let Journaled { paths, dirs } = read_journal(root)?;
    let mut rng = seed.map(|s| Rng(s | 1));
    let mut image = CrashImage::default();
    // Shallow paths first: a directory removed takes its files with it.
    for (path, durable) in &paths {
        if !path.exists() && fs::symlink_metadata(path).is_err() {
            continue;
        }
        let entry_durable = match durable.created {
            None => true,
            Some(created) => {
                let parent_synced = path
                    .parent()
                    .and_then(|parent| dirs.get(parent))
                    .is_some_and(|&synced| synced > created);
                parent_synced || rng.as_mut().is_some_and(|r| r.below(2) == 0)
            }
        };
        if !entry_durable {
            let removed = if path.is_dir() {
                fs::remove_dir_all(path)
            } else {
                fs::remove_file(path)
            };
            removed.map_err(io(format!("crash image: removing {}", path.display())))?;
            image.entries_removed += 1;
            continue;
        }
        if path.is_file() {
            cut(path, durable.synced, rng.as_mut(), &mut image)?;
        }
    }
    let journal = root.join(JOURNAL);
    File::create(&journal).map_err(io(journal.display().to_string()))?;
    Ok(image)
}

/// How many bytes of `file` from `from` to `len` are up to its last
/// nonzero byte: what was written there, preallocated zeros left out.
fn written_past(file: &File, from: u64, len: u64) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 64 * 1024];
    let mut end = len;
    while end > from {
        let start = end.saturating_sub(buf.len() as u64).max(from);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        if let Some(last) = chunk.iter().rposition(|&b| b != 0) {
            return Ok(start + last as u64 + 1 - from);
        }
        end = start;
    }
    Ok(0)
}

/// Cuts a file back to its synced data (none if never synced), keeping a
/// random prefix of the rest with `rng`, and gives it back its synced size
/// (preallocated space reads as zeros).
fn cut(
    path: &Path,
    synced: Option<(u64, u64)>,
    rng: Option<&mut Rng>,
    image: &mut CrashImage,
) -> Result<(), BusError> {
    let context = || format!("crash image: {}", path.display());
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io(context())(e))?;
    let len = file.metadata().map_err(|e| io(context())(e))?.len();
    let (data, size) = synced.unwrap_or((0, 0));
    let data = data.min(len);
    // None, all, or any prefix of the unsynced bytes: a file system writes
    // a file's cache back in order, and may be cut anywhere in it.
    let keep = match rng {
        Some(rng) if len > data => match rng.below(4) {
            0 => data,
            1 => len,
            _ => data + rng.below(len - data + 1),
        },
        _ => data,
    };
    if keep < len {
        image.bytes_cut += written_past(&file, keep, len).map_err(|e| io(context())(e))?;
        file.set_len(keep).map_err(|e| io(context())(e))?;
        image.files_cut += 1;
    }
    if size > keep {
        file.set_len(size).map_err(|e| io(context())(e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::LocalLog;
    use crate::bus::{Bus, TopicSpec};

    fn spec(name: &str) -> TopicSpec {
        TopicSpec {
            name: name.into(),
            partitions: 1,
            compacted: false,
            retention_ms: None,
        }
    }

    fn segment(root: &Path) -> std::path::PathBuf {
        root.join("t/0/00000000000000000000.log")
    }

    /// Three records acknowledged, two more appended and written to the
    /// file by a close without a flush (what a process that stops on an
    /// error between its appends and its flush leaves).
    fn three_synced_two_written(root: &Path) {
        let log = LocalLog::open_with(root, true).unwrap();
        log.ensure_topic(&spec("t")).unwrap();
        let mut producer = log.producer().unwrap();
        for i in 0..3u8 {
            producer.send("t", 0, b"k", &[i; 100], 0).unwrap();
        }
        producer.flush().unwrap();
        for i in 3..5u8 {
            producer.send("t", 0, b"k", &[i; 100], 0).unwrap();
        }
    }

    fn values(root: &Path) -> Vec<u8> {
        let log = LocalLog::open_with(root, true).unwrap();
        log.read("t", 0, 0, 100)
            .unwrap()
            .iter()
            .map(|r| r.value[0])
            .collect()
    }

    #[test]
    fn an_unsynced_append_disappears_and_a_synced_one_stays() {
        let dir = tempfile::tempdir().unwrap();
        three_synced_two_written(dir.path());
        let frame = 8 + 24 + 1 + 100;
        assert_eq!(
            std::fs::metadata(segment(dir.path())).unwrap().len(),
            5 * frame,
            "the two unsynced records are in the file (the page cache)"
        );
        let image = LocalLog::crash_image(dir.path(), None).unwrap();
        assert_eq!(image.files_cut, 1);
        assert_eq!(image.bytes_cut, 2 * frame);
        // The synced size was the preallocated one: zeros past the records.
        let len = std::fs::metadata(segment(dir.path())).unwrap().len();
        assert!(len > 3 * frame, "preallocated space back: {len}");
        assert_eq!(values(dir.path()), [0, 1, 2]);
        // Appends go on where the durable records end, and are durable.
        {
            let log = LocalLog::open_with(dir.path(), true).unwrap();
            let mut producer = log.producer().unwrap();
            producer.send("t", 0, b"k", &[9; 100], 0).unwrap();
            producer.flush().unwrap();
        }
        LocalLog::crash_image(dir.path(), None).unwrap();
        assert_eq!(values(dir.path()), [0, 1, 2, 9]);
    }

    #[test]
    fn the_mode_is_off_by_default_and_a_crash_image_then_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = LocalLog::open_with(dir.path(), false).unwrap();
            log.ensure_topic(&spec("t")).unwrap();
            let mut producer = log.producer().unwrap();
            producer.send("t", 0, b"k", &[7; 100], 0).unwrap();
        }
        assert!(!dir.path().join(super::JOURNAL).exists());
        let image = LocalLog::crash_image(dir.path(), None).unwrap();
        assert_eq!(image, super::CrashImage::default());
        assert_eq!(
            values(dir.path()),
            [7],
            "files it never saw synced are left as they are"
        );
    }

    #[test]
    fn an_entry_no_directory_fsync_made_durable_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = LocalLog::open_with(dir.path(), true).unwrap();
            log.ensure_topic(&spec("t")).unwrap();
            let mut producer = log.producer().unwrap();
            producer.send("t", 0, b"k", &[1; 10], 0).unwrap();
            producer.flush().unwrap();
            let mut consumer = log.consumer("g").unwrap();
            consumer.commit(&[("t".into(), 0, 1)]).unwrap();
            // Dropping the consumer writes the group's file, never synced.
        }
        let group = dir.path().join("_groups/g.json");
        assert!(group.exists());
        let image = LocalLog::crash_image(dir.path(), None).unwrap();
        assert_eq!(image.entries_removed, 1);
        assert!(
            !group.exists(),
            "a rename never followed by a directory fsync"
        );
        let log = LocalLog::open_with(dir.path(), true).unwrap();
        assert_eq!(log.committed("g", "t", 0).unwrap(), None);
        // The topic, its partition and segment were made durable.
        assert_eq!(log.end_offset("t", 0).unwrap(), 1);
    }

    #[test]
    fn a_seeded_image_keeps_a_prefix_of_the_unsynced_bytes_and_the_open_cuts_its_torn_tail() {
        let mut kept = std::collections::BTreeSet::new();
        for seed in 1..40u64 {
            let dir = tempfile::tempdir().unwrap();
            three_synced_two_written(dir.path());
            LocalLog::crash_image(dir.path(), Some(seed)).unwrap();
            let values = values(dir.path());
            assert_eq!(values[..3], [0, 1, 2], "seed {seed}: synced records stay");
            assert!(values.len() <= 5, "seed {seed}");
            kept.insert(values.len());
        }
        assert_eq!(
            kept.into_iter().collect::<Vec<_>>(),
            [3, 4, 5],
            "none, one or both unsynced records survive, a torn frame cut"
        );
    }

    #[test]
    fn records_a_reader_was_given_after_a_restart_survive_a_power_loss() {
        let dir = tempfile::tempdir().unwrap();
        three_synced_two_written(dir.path());
        // A restart without a power loss: the two unacknowledged records
        // are whole in the file, and a reader (the next stage) is given
        // them; what it derives from them it makes durable.
        assert_eq!(values(dir.path()), [0, 1, 2, 3, 4]);
        LocalLog::crash_image(dir.path(), None).unwrap();
        assert_eq!(
            values(dir.path()),
            [0, 1, 2, 3, 4],
            "records handed to a reader were lost by a power loss"
        );
    }

    /// A process killed between creating an entry and syncing its
    /// directory leaves it in the page cache only, and the next process
    /// finds it there and writes into it: the records it acknowledges must
    /// not go with the entry in a power loss. The soak found it (2026-12-07):
    /// a partition's first batch of decisions, synced and committed, gone
    /// with its segment, and the next batch written at offset 0.
    #[test]
    fn an_entry_left_unsynced_by_a_killed_process_is_made_durable_by_the_next_open() {
        use std::io::Write as _;
        // Where the killed process stopped: after creating the topic's
        // directory, the partition's, or its first segment, each journaled
        // and its directory not yet synced.
        for left in ["t", "t/0", "t/0/00000000000000000000.log"] {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path();
            {
                let log = LocalLog::open_with(root, true).unwrap();
                if left != "t" {
                    log.ensure_topic(&spec("t")).unwrap();
                }
                if left.ends_with(".log") {
                    // Opens the partition, creating its directory.
                    log.read("t", 0, 0, 1).unwrap();
                }
            }
            let path = root.join(left);
            if left.ends_with(".log") {
                std::fs::File::create(&path).unwrap();
            } else {
                std::fs::create_dir(&path).unwrap();
            }
            let mut journal = std::fs::OpenOptions::new()
                .append(true)
                .open(root.join(super::JOURNAL))
                .unwrap();
            writeln!(journal, "C\t{left}").unwrap();
            // The next process: its records acknowledged.
            {
                let log = LocalLog::open_with(root, true).unwrap();
                log.ensure_topic(&spec("t")).unwrap();
                let mut producer = log.producer().unwrap();
                producer.send("t", 0, b"k", &[4; 10], 0).unwrap();
                producer.flush().unwrap();
            }
            let image = LocalLog::crash_image(root, None).unwrap();
            assert_eq!(
                (image.entries_removed, values(root)),
                (0, vec![4]),
                "left unsynced: {left}; acknowledged records lost by a power loss"
            );
        }
    }

    /// Several producers append to the partitions they share (as the four
    /// stages writing `fse.rejected` do, each flushing only what it wrote),
    /// readers read, and each "process" ends by dropping the log (what a
    /// kill leaves written, unsynced); then a crash image, or a restart
    /// that reads what the page cache kept. Every record a reader was ever
    /// given must survive every later image: a stage that derived anything
    /// from it (a restore's suppression, an output end) has made that
    /// durable.
    #[test]
    fn records_any_reader_was_given_survive_every_later_crash_image() {
        use std::collections::BTreeMap;
        for seed in 1..=24u64 {
            let mut rng = super::Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let dir = tempfile::tempdir().unwrap();
            let mut given: [BTreeMap<u64, Vec<u8>>; 2] = Default::default();
            let mut written = 0u32;
            for _ in 0..6 {
                {
                    let log = LocalLog::open_with(dir.path(), true).unwrap();
                    log.ensure_topic(&TopicSpec::new("t", 2)).unwrap();
                    let mut producers: Vec<_> = (0..3).map(|_| log.producer().unwrap()).collect();
                    for _ in 0..rng.below(30) {
                        let producer = &mut producers[rng.below(3) as usize];
                        let partition = rng.below(2) as u32;
                        match rng.below(4) {
                            0 | 1 => {
                                written += 1;
                                // Some larger than the write buffer.
                                let value = vec![
                                    (written % 251) as u8 + 1;
                                    1 + rng.below(300_000) as usize
                                ];
                                producer.send("t", partition, b"k", &value, 0).unwrap();
                            }
                            2 => producer.flush().unwrap(),
                            _ => {
                                for r in log.read("t", partition, 0, usize::MAX).unwrap() {
                                    given[partition as usize].insert(r.offset, r.value);
                                }
                            }
                        }
                    }
                }
                if rng.below(2) == 0 {
                    let keep = (rng.below(2) == 0).then(|| rng.below(1 << 40) + 1);
                    LocalLog::crash_image(dir.path(), keep).unwrap();
                }
                let log = LocalLog::open_with(dir.path(), true).unwrap();
                for (partition, given) in given.iter().enumerate() {
                    let now: BTreeMap<u64, Vec<u8>> = log
                        .read("t", partition as u32, 0, usize::MAX)
                        .unwrap()
                        .into_iter()
                        .map(|r| (r.offset, r.value))
                        .collect();
                    for (offset, value) in given {
                        assert!(
                            now.get(offset) == Some(value),
                            "seed {seed}: t/{partition}@{offset}, given to a reader, lost"
                        );
                    }
                }
            }
        }
    }

    /// A segment a power loss left empty (created, never synced) is named
    /// by no journal line at the next open: what is appended to it and
    /// never synced must still go at the next power loss.
    #[test]
    fn an_unsynced_append_to_a_segment_left_empty_disappears() {
        let dir = tempfile::tempdir().unwrap();
        let append_unflushed = |value: u8| {
            let log = LocalLog::open_with(dir.path(), true).unwrap();
            log.ensure_topic(&spec("t")).unwrap();
            let mut producer = log.producer().unwrap();
            producer.send("t", 0, b"k", &[value; 100], 0).unwrap();
            // Dropped unflushed: the close writes the record, unsynced.
        };
        append_unflushed(1);
        LocalLog::crash_image(dir.path(), None).unwrap();
        assert_eq!(std::fs::metadata(segment(dir.path())).unwrap().len(), 0);
        append_unflushed(2);
        LocalLog::crash_image(dir.path(), None).unwrap();
        assert_eq!(
            values(dir.path()),
            Vec::<u8>::new(),
            "a record never synced survived"
        );
    }
}
