//! Spotify's privacy export ("Download your data"), read as plays: the ZIP
//! (`my_spotify_data.zip`) or one of the JSON files in it, streamed entry by entry and play by
//! play, so memory does not grow with the file.
//!
//! Two formats (shapes and sources in shared/research/distributed-and-history.md §4):
//! - the **extended streaming history**, `Streaming_History_Audio_<years>_<n>.json` (older:
//!   `endsong_<n>.json`): `ts` (when the play ended, UTC), `ms_played`,
//!   `master_metadata_track_name`, `master_metadata_album_artist_name`,
//!   `master_metadata_album_album_name`, `spotify_track_uri`, and episode and audiobook
//!   fields for the rest;
//! - the **account data**, `StreamingHistory_music_<n>.json` (older: `StreamingHistory<n>.json`):
//!   `endTime` ("2021-10-14 21:13", UTC, minute precision), `artistName`, `trackName`,
//!   `msPlayed`; no ids.
//!
//! Every field is read as optional (Spotify changed the shape more than once; importers that
//! required fields broke). The rule for each entry, counted in [`Counts`]:
//! - a podcast episode or an audiobook chapter (an episode or audiobook URI, no track
//!   name): **skipped**, counted as `podcasts`;
//! - no track or no artist name (unavailable or unknown content): **skipped**, `unknown`;
//! - under 30 s (Spotify's own threshold for a stream): **skipped**, `short`;
//! - otherwise **kept**: with its track id when it has a `spotify:track:` URI, else keyed by
//!   its names (local files, the account data).
//!
//! Not read: video history, podcast-only files (`StreamingHistory_podcast_*`), and anything
//! else in the ZIP (playlists, library, user data).

use super::{Play, Source};
use crate::domain::names;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde::Deserialize;
use std::cell::Cell;
use std::fmt;
use std::io::{Read, Seek};
use std::rc::Rc;

/// Shorter plays are not counted (Spotify's own threshold for a stream).
pub const MIN_MS: i64 = 30_000;
/// Plays handed to the caller at a time.
pub const BATCH: usize = 5_000;

/// Bounds on what a ZIP may unpack to: far above any real export (a decade of heavy
/// listening is a few hundred MB of JSON), far below what would hurt the server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_entries: usize,
    /// Unpacked bytes of one history file, and of all of them.
    pub max_file_bytes: u64,
    pub max_total_bytes: u64,
    /// Unpacked ÷ packed, per file: JSON compresses ~10×; a bomb, thousands of times.
    pub max_ratio: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 2_000,
            max_file_bytes: 256 * 1024 * 1024,
            max_total_bytes: 2 * 1024 * 1024 * 1024,
            max_ratio: 100,
        }
    }
}

/// Which history a file holds, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Extended,
    Account,
    /// A JSON file uploaded alone: each entry's own fields say which (`ts` or `endTime`).
    Either,
}

impl FileKind {
    /// The kind of a file named `path` (any folder), or `None` for files that hold no
    /// music plays.
    pub fn of(path: &str) -> Option<FileKind> {
        let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
        let json = name.to_ascii_lowercase().ends_with(".json");
        if !json {
            return None;
        }
        if name.starts_with("Streaming_History_Audio_") || name.starts_with("endsong_") {
            Some(FileKind::Extended)
        } else if name.starts_with("StreamingHistory_music_")
            || name
                .strip_prefix("StreamingHistory")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        {
            Some(FileKind::Account)
        } else {
            None
        }
    }
}

/// Why an export cannot be read, in words for the person who uploaded it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExportError {
    #[error(
        "This file is neither a ZIP nor a JSON file. Upload my_spotify_data.zip from Spotify's \
         privacy page, or the Streaming_History_Audio_….json files in it."
    )]
    NotZipOrJson,
    #[error(
        "This ZIP holds no streaming history ({0}). Spotify's extended streaming history has \
         files named Streaming_History_Audio_….json; the account data has \
         StreamingHistory_music_….json."
    )]
    NoHistory(String),
    #[error("This ZIP cannot be read ({0}). Download the export from Spotify again.")]
    BadZip(String),
    #[error("This ZIP unpacks to far more than any Spotify export ({0}), so it was not read.")]
    TooBig(String),
    #[error("{file} is not a Spotify streaming history: {why}.")]
    WrongShape { file: String, why: String },
    #[error("{file} is not valid JSON ({why}). Download the export from Spotify again.")]
    BadJson { file: String, why: String },
    #[error(
        "The uploaded file is no longer on the server (its import folder was cleared, e.g. \
         by a restart of the machine); upload it again."
    )]
    UploadGone,
    /// The caller's batch handler failed (storing the plays); its message.
    #[error("{0}")]
    Store(String),
}

/// What reading an export found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    /// Entries read, of every kind.
    pub entries: u64,
    /// Plays kept (handed to the caller).
    pub plays: u64,
    pub podcasts: u64,
    pub unknown: u64,
    pub short: u64,
    /// Entries that cannot be read as a play (a value of the wrong kind, no time): skipped.
    #[serde(default)]
    pub unreadable: u64,
    /// History files read.
    pub files: u64,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.entries += other.entries;
        self.plays += other.plays;
        self.podcasts += other.podcasts;
        self.unknown += other.unknown;
        self.short += other.short;
        self.unreadable += other.unreadable;
        self.files += other.files;
    }
}

/// The history files in a ZIP, in name order (so a resumed import reads the same entries
/// in the same order), each as (index in the archive, name, kind), after checking the
/// archive's limits.
pub fn history_files<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    limits: Limits,
) -> Result<Vec<(usize, String, FileKind)>, ExportError> {
    if archive.len() > limits.max_entries {
        return Err(ExportError::TooBig(format!("{} files", archive.len())));
    }
    let mut files = Vec::new();
    let mut others = Vec::new();
    let mut total: u64 = 0;
    for i in 0..archive.len() {
        let entry = archive
            .by_index_raw(i)
            .map_err(|e| ExportError::BadZip(e.to_string()))?;
        let name = entry
            .name()
            .map_err(|e| ExportError::BadZip(e.to_string()))?
            .to_string();
        if entry.is_dir() {
            continue;
        }
        let Some(kind) = FileKind::of(&name) else {
            if others.len() < 3 {
                others.push(name.rsplit('/').next().unwrap_or(&name).to_string());
            }
            continue;
        };
        let (size, packed) = (entry.size(), entry.compressed_size().max(1));
        if size > limits.max_file_bytes || size / packed > limits.max_ratio {
            return Err(ExportError::TooBig(format!(
                "{name}: {} MB from {} KB",
                size / 1_000_000,
                packed / 1_000
            )));
        }
        total = total.saturating_add(size);
        if total > limits.max_total_bytes {
            return Err(ExportError::TooBig(format!(
                "over {} MB",
                total / 1_000_000
            )));
        }
        files.push((i, name, kind));
    }
    if files.is_empty() {
        let what = if others.is_empty() {
            "it is empty".to_string()
        } else {
            format!("it has {}", others.join(", "))
        };
        return Err(ExportError::NoHistory(what));
    }
    files.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(files)
}

/// Read one history file's plays from `reader` (its unpacked bytes, at most `max_bytes`),
/// handing them to `batch` [`BATCH`] at a time. `skip` entries are passed over first (a
/// resumed import).
pub fn read_file(
    reader: impl Read,
    file: &str,
    kind: FileKind,
    max_bytes: u64,
    skip: u64,
    batch: &mut dyn FnMut(Vec<Play>, Counts) -> Result<(), String>,
) -> Result<Counts, ExportError> {
    let exceeded = Rc::new(Cell::new(false));
    let limited = LimitedReader {
        inner: reader,
        left: max_bytes,
        exceeded: exceeded.clone(),
    };
    // serde_json reads a byte at a time: without a buffer each byte is a call through the
    // limit, the ZIP's CRC check and the inflater (reading a 256,529-entry export took
    // 8.0 s unbuffered, 0.9 s buffered, release build).
    let mut de =
        serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(1 << 16, limited));
    let mut state = Reading {
        file,
        kind,
        skip,
        counts: Counts {
            files: 1,
            ..Counts::default()
        },
        pending: Vec::with_capacity(BATCH),
        pending_counts: Counts::default(),
        batch,
        failure: None,
        classified: 0,
        unreadable: 0,
        timeless: 0,
    };
    let read = (&mut state).deserialize(&mut de).and_then(|()| de.end());
    if let Some(failure) = state.failure.take() {
        return Err(failure);
    }
    if exceeded.get() {
        let limit = if max_bytes >= 1_000_000 {
            format!("{} MB", max_bytes / 1_000_000)
        } else {
            format!("{} KB", max_bytes / 1_000)
        };
        return Err(ExportError::TooBig(format!(
            "{file} unpacks to over {limit}"
        )));
    }
    read.map_err(|e| json_error(file, &e))?;
    if state.classified < SHAPE_PROBE {
        state.probe()?;
    }
    state.flush()?;
    Ok(state.counts)
}

fn json_error(file: &str, e: &serde_json::Error) -> ExportError {
    let file = file.to_string();
    if e.is_io() {
        // The archive's own checks (zip): a file larger than it says, or a wrong checksum.
        let why = e.to_string();
        return if why.contains("declared") {
            ExportError::TooBig(format!("{file} unpacks to more than the archive says"))
        } else {
            ExportError::BadZip(format!("{file}: {why}"))
        };
    }
    match e.classify() {
        serde_json::error::Category::Data => ExportError::WrongShape {
            file,
            why: "it is not a list of plays".into(),
        },
        serde_json::error::Category::Eof => ExportError::BadJson {
            file,
            why: "it ends too soon: the file is cut off".into(),
        },
        _ => ExportError::BadJson {
            file,
            why: format!("line {}, column {}", e.line(), e.column()),
        },
    }
}

/// Read a whole ZIP: every history file in name order. `resume_from` is how many entries
/// (over all files, in that order) were already handled and are passed over.
pub fn read_zip<R: Read + Seek>(
    reader: R,
    limits: Limits,
    resume_from: u64,
    batch: &mut dyn FnMut(Vec<Play>, Counts) -> Result<(), String>,
) -> Result<Counts, ExportError> {
    let mut archive =
        zip::ZipArchive::new(reader).map_err(|e| ExportError::BadZip(e.to_string()))?;
    let files = history_files(&mut archive, limits)?;
    let mut counts = Counts::default();
    let mut seen: u64 = 0;
    // The bytes actually inflated, whatever the archive declares: a file's limit is the
    // least of its own bound, its ratio to its packed size, and what is left of the total.
    let mut left = limits.max_total_bytes;
    for (index, name, kind) in files {
        let entry = archive
            .by_index(index)
            .map_err(|e| ExportError::BadZip(e.to_string()))?;
        let packed = entry.compressed_size().max(1);
        let max = limits
            .max_file_bytes
            .min(packed.saturating_mul(limits.max_ratio))
            .min(left);
        let inflated = Rc::new(Cell::new(0u64));
        let counted = Counted {
            inner: entry,
            bytes: inflated.clone(),
        };
        let skip = resume_from.saturating_sub(seen);
        let file = read_file(counted, &name, kind, max, skip, batch)?;
        left = left.saturating_sub(inflated.get());
        seen += file.entries;
        counts.add(file);
    }
    Ok(counts)
}

/// Read a JSON file uploaded on its own (either history), like [`read_file`].
pub fn read_json(
    reader: impl Read,
    max_bytes: u64,
    skip: u64,
    batch: &mut dyn FnMut(Vec<Play>, Counts) -> Result<(), String>,
) -> Result<Counts, ExportError> {
    read_file(
        reader,
        "This file",
        FileKind::Either,
        max_bytes,
        skip,
        batch,
    )
}

/// Stops reading after `left` bytes and says so (a JSON parser sees a cut-off file; the
/// caller reports the size instead).
struct LimitedReader<R> {
    inner: R,
    left: u64,
    exceeded: Rc<Cell<bool>>,
}

impl<R: Read> Read for LimitedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? > 0 {
                self.exceeded.set(true);
            }
            return Ok(0);
        }
        let cap = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..cap])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Counts the bytes read through it.
struct Counted<R> {
    inner: R,
    bytes: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes.set(self.bytes.get() + n as u64);
        Ok(n)
    }
}

/// One entry of either format; every field optional. A field holding a value of another
/// kind (`"ms_played": "abc"`) marks the entry `wrong` instead of failing the file.
#[derive(Debug, Default)]
struct Entry {
    ts: Option<String>,
    ms_played: Option<i64>,
    master_metadata_track_name: Option<String>,
    master_metadata_album_artist_name: Option<String>,
    master_metadata_album_album_name: Option<String>,
    spotify_track_uri: Option<String>,
    spotify_episode_uri: Option<String>,
    audiobook_uri: Option<String>,
    audiobook_chapter_uri: Option<String>,
    end_time: Option<String>,
    artist_name: Option<String>,
    track_name: Option<String>,
    ms_played_account: Option<i64>,
    /// A field read had a value of the wrong kind.
    wrong: bool,
}

/// The fields of [`Entry`] by their names in the export; every other key is passed over.
enum Key {
    Ts,
    MsPlayed,
    TrackName,
    AlbumArtistName,
    AlbumName,
    TrackUri,
    EpisodeUri,
    AudiobookUri,
    AudiobookChapterUri,
    EndTime,
    ArtistName,
    TrackNameAccount,
    MsPlayedAccount,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl Visitor<'_> for Name {
            type Value = Key;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }

            fn visit_str<E>(self, name: &str) -> Result<Key, E> {
                Ok(match name {
                    "ts" => Key::Ts,
                    "ms_played" => Key::MsPlayed,
                    "master_metadata_track_name" => Key::TrackName,
                    "master_metadata_album_artist_name" => Key::AlbumArtistName,
                    "master_metadata_album_album_name" => Key::AlbumName,
                    "spotify_track_uri" => Key::TrackUri,
                    "spotify_episode_uri" => Key::EpisodeUri,
                    "audiobook_uri" => Key::AudiobookUri,
                    "audiobook_chapter_uri" => Key::AudiobookChapterUri,
                    "endTime" => Key::EndTime,
                    "artistName" => Key::ArtistName,
                    "trackName" => Key::TrackNameAccount,
                    "msPlayed" => Key::MsPlayedAccount,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(Name)
    }
}

/// A field's value read leniently: `null` is absent, a value of another kind is `Wrong`
/// (and read to its end, so the rest of the file reads on).
enum Lenient<T> {
    Absent,
    Value(T),
    Wrong,
}

impl<T> Lenient<T> {
    /// The value, noting a wrong one on the entry.
    fn into_option(self, wrong: &mut bool) -> Option<T> {
        match self {
            Lenient::Absent => None,
            Lenient::Value(v) => Some(v),
            Lenient::Wrong => {
                *wrong = true;
                None
            }
        }
    }
}

/// The kinds of value a lenient field takes: text or a whole number.
trait LenientKind: Sized {
    fn from_str(s: &str) -> Option<Self>;
    fn from_string(s: String) -> Option<Self> {
        Self::from_str(&s)
    }
    fn from_i64(n: i64) -> Option<Self>;
}

impl LenientKind for String {
    fn from_str(s: &str) -> Option<Self> {
        Some(s.to_string())
    }
    fn from_string(s: String) -> Option<Self> {
        Some(s)
    }
    fn from_i64(_: i64) -> Option<Self> {
        None
    }
}

impl LenientKind for i64 {
    fn from_str(s: &str) -> Option<Self> {
        s.trim().parse().ok()
    }
    fn from_i64(n: i64) -> Option<Self> {
        Some(n)
    }
}

impl<'de, T: LenientKind> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Any<T>(std::marker::PhantomData<T>);
        impl<'de, T: LenientKind> Visitor<'de> for Any<T> {
            type Value = Lenient<T>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any value")
            }

            fn visit_unit<E>(self) -> Result<Lenient<T>, E> {
                Ok(Lenient::Absent)
            }

            fn visit_none<E>(self) -> Result<Lenient<T>, E> {
                Ok(Lenient::Absent)
            }

            fn visit_str<E>(self, s: &str) -> Result<Lenient<T>, E> {
                Ok(T::from_str(s).map_or(Lenient::Wrong, Lenient::Value))
            }

            fn visit_string<E>(self, s: String) -> Result<Lenient<T>, E> {
                Ok(T::from_string(s).map_or(Lenient::Wrong, Lenient::Value))
            }

            fn visit_i64<E>(self, n: i64) -> Result<Lenient<T>, E> {
                Ok(T::from_i64(n).map_or(Lenient::Wrong, Lenient::Value))
            }

            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Lenient<T>, E> {
                self.visit_i64(i64::try_from(n).unwrap_or(i64::MAX))
            }

            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Lenient<T>, E> {
                if n.is_finite() && n.fract() == 0.0 {
                    // Saturating: a play's length is bounded later.
                    self.visit_i64(n as i64)
                } else {
                    Ok(Lenient::Wrong)
                }
            }

            fn visit_bool<E>(self, _: bool) -> Result<Lenient<T>, E> {
                Ok(Lenient::Wrong)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Lenient<T>, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Lenient::Wrong)
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Lenient<T>, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Lenient::Wrong)
            }
        }
        d.deserialize_any(Any(std::marker::PhantomData))
    }
}

impl Entry {
    /// An entry object's fields, leniently (a key given twice: the last one counts).
    fn read<'de, A: serde::de::MapAccess<'de>>(mut map: A) -> Result<Entry, A::Error> {
        let mut e = Entry::default();
        let mut wrong = false;
        while let Some(key) = map.next_key::<Key>()? {
            let w = &mut wrong;
            match key {
                Key::Ts => e.ts = map.next_value::<Lenient<String>>()?.into_option(w),
                Key::MsPlayed => e.ms_played = map.next_value::<Lenient<i64>>()?.into_option(w),
                Key::TrackName => {
                    e.master_metadata_track_name =
                        map.next_value::<Lenient<String>>()?.into_option(w)
                }
                Key::AlbumArtistName => {
                    e.master_metadata_album_artist_name =
                        map.next_value::<Lenient<String>>()?.into_option(w)
                }
                Key::AlbumName => {
                    e.master_metadata_album_album_name =
                        map.next_value::<Lenient<String>>()?.into_option(w)
                }
                Key::TrackUri => {
                    e.spotify_track_uri = map.next_value::<Lenient<String>>()?.into_option(w)
                }
                Key::EpisodeUri => {
                    e.spotify_episode_uri = map.next_value::<Lenient<String>>()?.into_option(w)
                }
                Key::AudiobookUri => {
                    e.audiobook_uri = map.next_value::<Lenient<String>>()?.into_option(w)
                }
                Key::AudiobookChapterUri => {
                    e.audiobook_chapter_uri = map.next_value::<Lenient<String>>()?.into_option(w)
                }
                Key::EndTime => e.end_time = map.next_value::<Lenient<String>>()?.into_option(w),
                Key::ArtistName => {
                    e.artist_name = map.next_value::<Lenient<String>>()?.into_option(w)
                }
                Key::TrackNameAccount => {
                    e.track_name = map.next_value::<Lenient<String>>()?.into_option(w)
                }
                Key::MsPlayedAccount => {
                    e.ms_played_account = map.next_value::<Lenient<i64>>()?.into_option(w)
                }
                Key::Other => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        e.wrong = wrong;
        Ok(e)
    }
}

/// What one entry is.
enum Read1 {
    Play(Play),
    Podcast,
    Unknown,
    Short,
    /// A field with a value of the wrong kind: skipped, counted as unreadable.
    Unreadable,
    /// No time at all: not a play record (unreadable too, and the sign of a file of
    /// another kind when no entry has one).
    NotAPlay,
}

fn classify(entry: Entry, kind: FileKind) -> Read1 {
    if entry.wrong {
        return Read1::Unreadable;
    }
    let kind = match kind {
        FileKind::Either if entry.ts.is_some() => FileKind::Extended,
        FileKind::Either if entry.end_time.is_some() => FileKind::Account,
        FileKind::Either => return Read1::NotAPlay,
        known => known,
    };
    let (at, ms, track, artist, album, track_id, source) = match kind {
        FileKind::Extended => {
            let Some(at) = entry
                .ts
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
            else {
                return Read1::NotAPlay;
            };
            // Anything but `spotify:track:` and a 22-character id is no track id: the play
            // is keyed by its names, as a local file is.
            let track_id = entry
                .spotify_track_uri
                .as_deref()
                .and_then(names::track_id_of_uri)
                .map(str::to_string);
            (
                at,
                entry.ms_played,
                names::bounded_optional(entry.master_metadata_track_name),
                names::bounded_optional(entry.master_metadata_album_artist_name),
                names::bounded_optional(entry.master_metadata_album_album_name),
                track_id,
                Source::Extended,
            )
        }
        FileKind::Account | FileKind::Either => {
            let Some(at) = entry
                .end_time
                .as_deref()
                .and_then(|t| NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M").ok())
                .map(|t| t.and_utc())
            else {
                return Read1::NotAPlay;
            };
            (
                at,
                entry.ms_played_account,
                names::bounded_optional(entry.track_name),
                names::bounded_optional(entry.artist_name),
                None,
                None,
                Source::Account,
            )
        }
    };
    let episode = entry.spotify_episode_uri.is_some()
        || entry.audiobook_uri.is_some()
        || entry.audiobook_chapter_uri.is_some();
    let (Some(track), Some(artist)) = (track, artist) else {
        return if episode {
            Read1::Podcast
        } else {
            Read1::Unknown
        };
    };
    let ms = ms.unwrap_or(0);
    if ms < MIN_MS {
        return Read1::Short;
    }
    Read1::Play(Play {
        played_at: at,
        track_id,
        track_name: track,
        artist_name: artist,
        artist_id: None,
        album_name: album,
        ms_played: i32::try_from(ms).unwrap_or(i32::MAX),
        source,
    })
}

/// A file none of whose first this many entries reads as a play record is of another kind
/// (and fails); past them, an entry that cannot be read is skipped and counted.
const SHAPE_PROBE: u64 = 100;

struct Reading<'a> {
    file: &'a str,
    kind: FileKind,
    skip: u64,
    counts: Counts,
    pending: Vec<Play>,
    pending_counts: Counts,
    batch: &'a mut dyn FnMut(Vec<Play>, Counts) -> Result<(), String>,
    failure: Option<ExportError>,
    /// Entries of this file classified (past `skip`), and of them unreadable and with no
    /// time: the shape probe's counts.
    classified: u64,
    unreadable: u64,
    timeless: u64,
}

impl Reading<'_> {
    fn flush(&mut self) -> Result<(), ExportError> {
        if self.pending.is_empty() && self.pending_counts == Counts::default() {
            return Ok(());
        }
        let plays = std::mem::take(&mut self.pending);
        let counts = std::mem::take(&mut self.pending_counts);
        (self.batch)(plays, counts).map_err(ExportError::Store)
    }

    fn one(&mut self, entry: Entry) -> Result<(), ExportError> {
        self.counts.entries += 1;
        if self.counts.entries <= self.skip {
            return Ok(());
        }
        self.pending_counts.entries += 1;
        match classify(entry, self.kind) {
            Read1::Play(play) => {
                self.counts.plays += 1;
                self.pending_counts.plays += 1;
                self.pending.push(play);
            }
            Read1::Podcast => {
                self.counts.podcasts += 1;
                self.pending_counts.podcasts += 1;
            }
            Read1::Unknown => {
                self.counts.unknown += 1;
                self.pending_counts.unknown += 1;
            }
            Read1::Short => {
                self.counts.short += 1;
                self.pending_counts.short += 1;
            }
            read @ (Read1::Unreadable | Read1::NotAPlay) => {
                self.counts.unreadable += 1;
                self.pending_counts.unreadable += 1;
                self.unreadable += 1;
                if matches!(read, Read1::NotAPlay) {
                    self.timeless += 1;
                }
            }
        }
        self.classified += 1;
        if self.classified == SHAPE_PROBE {
            self.probe()?;
        }
        if self.pending.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// Fail the file when no entry classified so far reads as a play record: it is of
    /// another kind, or not a history at all.
    fn probe(&self) -> Result<(), ExportError> {
        if self.classified == 0 || self.unreadable < self.classified {
            return Ok(());
        }
        let entries = if self.classified == 1 {
            format!("entry {} has", self.skip + 1)
        } else {
            format!(
                "entries {} to {} have",
                self.skip + 1,
                self.skip + self.classified
            )
        };
        let why = if self.timeless == self.unreadable {
            format!(
                "{entries} no {} (this is not a {} file)",
                match self.kind {
                    FileKind::Extended => "ts time",
                    FileKind::Account => "endTime",
                    FileKind::Either => "time (ts or endTime)",
                },
                match self.kind {
                    FileKind::Extended => "Streaming_History_Audio",
                    FileKind::Account => "StreamingHistory_music",
                    FileKind::Either => "streaming history",
                }
            )
        } else {
            format!("{entries} values of the wrong kind (text where a number belongs, or the like)")
        };
        Err(ExportError::WrongShape {
            file: self.file.to_string(),
            why,
        })
    }
}

impl<'de> DeserializeSeed<'de> for &mut Reading<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for &mut Reading<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of plays")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            // An element that is not an object (a number, a list) is no play record.
            let next: Option<Option<Entry>> = match seq.next_element::<EntryOrOther>() {
                Ok(Some(EntryOrOther(e))) => Some(e),
                Ok(None) => None,
                Err(e) => return Err(e),
            };
            let Some(entry) = next else {
                return Ok(());
            };
            let entry = entry.unwrap_or_default();
            if let Err(failure) = self.one(entry) {
                self.failure = Some(failure);
                // Stop reading: the rest of the file does not matter any more.
                return Err(serde::de::Error::custom("stopped"));
            }
        }
    }
}

/// An element of the list: an entry object (read straight into [`Entry`], no tree in
/// between), or anything else (read and dropped, which then counts as an entry with no
/// time).
struct EntryOrOther(Option<Entry>);

impl<'de> Deserialize<'de> for EntryOrOther {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Element;
        impl<'de> Visitor<'de> for Element {
            type Value = EntryOrOther;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a play record")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<EntryOrOther, A::Error> {
                Entry::read(map).map(|e| EntryOrOther(Some(e)))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<EntryOrOther, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(EntryOrOther(None))
            }

            fn visit_bool<E>(self, _: bool) -> Result<EntryOrOther, E> {
                Ok(EntryOrOther(None))
            }

            fn visit_i64<E>(self, _: i64) -> Result<EntryOrOther, E> {
                Ok(EntryOrOther(None))
            }

            fn visit_u64<E>(self, _: u64) -> Result<EntryOrOther, E> {
                Ok(EntryOrOther(None))
            }

            fn visit_f64<E>(self, _: f64) -> Result<EntryOrOther, E> {
                Ok(EntryOrOther(None))
            }

            fn visit_str<E>(self, _: &str) -> Result<EntryOrOther, E> {
                Ok(EntryOrOther(None))
            }

            fn visit_unit<E>(self) -> Result<EntryOrOther, E> {
                Ok(EntryOrOther(None))
            }
        }
        d.deserialize_any(Element)
    }
}

/// What an upload is, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upload {
    Zip,
    Json,
}

/// A ZIP by its signature, JSON by its first character (after a byte-order mark and
/// white space); anything else is refused before it is read.
pub fn sniff(head: &[u8]) -> Result<Upload, ExportError> {
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Ok(Upload::Zip);
    }
    let text = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    match text.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') | Some(b'{') => Ok(Upload::Json),
        _ => Err(ExportError::NotZipOrJson),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Write};

    fn extended(entries: &str) -> String {
        format!("[{entries}]")
    }

    const TRACK: &str = r#"{"ts":"2024-03-01T10:00:00Z","platform":"ios","ms_played":200000,
        "conn_country":"ID","ip_addr":"203.0.113.1","master_metadata_track_name":"Song",
        "master_metadata_album_artist_name":"Band","master_metadata_album_album_name":"Album",
        "spotify_track_uri":"spotify:track:4iV5W9uYEdYUVa79Axb7Rh","episode_name":null,
        "episode_show_name":null,"spotify_episode_uri":null,"reason_start":"trackdone",
        "reason_end":"trackdone","shuffle":false,"skipped":null,"offline":false,
        "offline_timestamp":0,"incognito_mode":false}"#;
    const EPISODE: &str = r#"{"ts":"2024-03-01T11:00:00Z","ms_played":900000,
        "master_metadata_track_name":null,"master_metadata_album_artist_name":null,
        "spotify_track_uri":null,"episode_name":"Talk","spotify_episode_uri":"spotify:episode:abc"}"#;
    const NAMELESS: &str = r#"{"ts":"2024-03-01T12:00:00Z","ms_played":100000,
        "master_metadata_track_name":null,"master_metadata_album_artist_name":null,"spotify_track_uri":null}"#;
    const SHORT: &str = r#"{"ts":"2024-03-01T13:00:00Z","ms_played":12000,
        "master_metadata_track_name":"Skip","master_metadata_album_artist_name":"Band",
        "spotify_track_uri":"spotify:track:0000000000000000000001"}"#;
    const LOCAL: &str = r#"{"ts":"2024-03-01T14:00:00Z","ms_played":180000,
        "master_metadata_track_name":"Home Demo","master_metadata_album_artist_name":"Me",
        "spotify_track_uri":null,"username":"old-field","ip_addr_decrypted":"x"}"#;

    fn read(json: &str, kind: FileKind) -> Result<(Vec<Play>, Counts), ExportError> {
        let mut plays = Vec::new();
        let counts = read_file(
            json.as_bytes(),
            "Streaming_History_Audio_2024.json",
            kind,
            u64::MAX,
            0,
            &mut |batch, _| {
                plays.extend(batch);
                Ok(())
            },
        )?;
        Ok((plays, counts))
    }

    #[test]
    fn file_kinds_come_from_names() {
        use FileKind::*;
        for (name, kind) in [
            (
                "Spotify Extended Streaming History/Streaming_History_Audio_2019-2021_0.json",
                Some(Extended),
            ),
            ("MyData/endsong_3.json", Some(Extended)),
            (
                "Spotify Account Data/StreamingHistory_music_0.json",
                Some(Account),
            ),
            ("MyData/StreamingHistory1.json", Some(Account)),
            ("Spotify Account Data/StreamingHistory_podcast_0.json", None),
            (
                "Spotify Extended Streaming History/Streaming_History_Video_2020.json",
                None,
            ),
            ("Spotify Account Data/Userdata.json", None),
            ("Streaming_History_Audio_2020.pdf", None),
        ] {
            assert_eq!(FileKind::of(name), kind, "{name}");
        }
    }

    #[test]
    fn extended_entries_follow_the_rule() {
        let json = extended(&[TRACK, EPISODE, NAMELESS, SHORT, LOCAL].join(","));
        let (plays, counts) = read(&json, FileKind::Extended).unwrap();
        assert_eq!(
            counts,
            Counts {
                entries: 5,
                plays: 2,
                podcasts: 1,
                unknown: 1,
                short: 1,
                unreadable: 0,
                files: 1
            }
        );
        assert_eq!(plays[0].track_id.as_deref(), Some("4iV5W9uYEdYUVa79Axb7Rh"));
        assert_eq!(
            (plays[0].track_name.as_str(), plays[0].artist_name.as_str()),
            ("Song", "Band")
        );
        assert_eq!(plays[0].album_name.as_deref(), Some("Album"));
        assert_eq!(plays[0].ms_played, 200_000);
        assert_eq!(plays[0].played_at.to_rfc3339(), "2024-03-01T10:00:00+00:00");
        assert_eq!(plays[0].source, Source::Extended);
        // A local file: kept, keyed by its names (no id).
        assert_eq!(plays[1].track_id, None);
        assert_eq!(plays[1].track_name, "Home Demo");
    }

    #[test]
    fn account_data_is_read_with_minute_times_and_no_ids() {
        let json = r#"[{"endTime":"2021-10-14 21:13","artistName":"Band","trackName":"Song","msPlayed":59399},
                       {"endTime":"2021-10-14 21:20","artistName":"Band","trackName":"Tiny","msPlayed":3000}]"#;
        let (plays, counts) = read(json, FileKind::Account).unwrap();
        assert_eq!((counts.plays, counts.short), (1, 1));
        assert_eq!(plays[0].played_at.to_rfc3339(), "2021-10-14T21:13:00+00:00");
        assert_eq!(
            (plays[0].track_id.clone(), plays[0].source),
            (None, Source::Account)
        );
    }

    #[test]
    fn the_wrong_shape_and_broken_json_are_named() {
        let err = read(r#"{"username":"x","country":"ID"}"#, FileKind::Extended).unwrap_err();
        assert!(matches!(err, ExportError::WrongShape { .. }), "{err}");
        assert!(err.to_string().contains("not a list of plays"), "{err}");
        // Account data read as extended: no `ts`.
        let err = read(
            r#"[{"endTime":"2021-10-14 21:13","msPlayed":1}]"#,
            FileKind::Extended,
        )
        .unwrap_err();
        assert!(err.to_string().contains("entry 1 has no ts time"), "{err}");
        let err = read(&extended(TRACK)[..120], FileKind::Extended).unwrap_err();
        assert!(err.to_string().contains("cut off"), "{err}");
        let err = read("[{\"ts\": nonsense}]", FileKind::Extended).unwrap_err();
        assert!(matches!(err, ExportError::BadJson { .. }), "{err}");
        // An element that is no object is no play record: skipped beside a good one, the
        // wrong shape when nothing else is there.
        let (plays, counts) = read(&format!("[1, {TRACK}]"), FileKind::Extended).unwrap();
        assert_eq!((plays.len(), counts.unreadable), (1, 1));
        let err = read("[1, 2, []]", FileKind::Extended).unwrap_err();
        assert!(
            err.to_string().contains("entries 1 to 3 have no ts time"),
            "{err}"
        );
        // Nothing reached the caller from a file that failed at its first entry.
        let mut called = false;
        let _ = read_file(
            &b"[{\"x\":1}]"[..],
            "f.json",
            FileKind::Extended,
            u64::MAX,
            0,
            &mut |_, _| {
                called = true;
                Ok(())
            },
        );
        assert!(!called);
    }

    #[test]
    fn an_entry_with_a_value_of_the_wrong_kind_is_skipped_not_the_file() {
        let bad = TRACK.replace("\"ms_played\":200000", "\"ms_played\":\"abc\"");
        let odd = TRACK
            .replace("\"ms_played\":200000", "\"ms_played\":\"200000\"")
            .replace(
                "\"ts\":\"2024-03-01T10:00:00Z\"",
                "\"ts\":\"2024-03-01T10:05:00Z\"",
            );
        let object_name = TRACK.replace(
            "\"master_metadata_track_name\":\"Song\"",
            "\"master_metadata_track_name\":{\"a\":[1,2]}",
        );
        let twice = TRACK.replace("\"platform\":\"ios\"", "\"ts\":\"2024-03-01T09:00:00Z\"");
        let json = extended(&[TRACK, &bad, &odd, &object_name, &twice, "{}"].join(","));
        let (plays, counts) = read(&json, FileKind::Extended).unwrap();
        assert_eq!(
            (counts.entries, counts.plays, counts.unreadable),
            (6, 3, 3),
            "the text ms_played, the object name and the entry with no time"
        );
        // A number as text is read; a key given twice counts once, the last value.
        assert_eq!(plays[1].ms_played, 200_000);
        assert_eq!(plays[2].played_at.to_rfc3339(), "2024-03-01T09:00:00+00:00");
        // A whole file of wrong values is the wrong shape, said so.
        let all_bad = extended(&[bad.as_str(); 3].join(","));
        let err = read(&all_bad, FileKind::Extended).unwrap_err();
        assert!(
            err.to_string().contains("values of the wrong kind"),
            "{err}"
        );
    }

    #[test]
    fn names_are_bounded_and_odd_track_uris_are_no_ids() {
        let long = "x".repeat(1_000_000);
        let entry = TRACK
            .replace("\"Song\"", &format!("\"{long}\""))
            .replace("\"Band\"", "\"Ba\\u0000nd\"")
            .replace(
                "spotify:track:4iV5W9uYEdYUVa79Axb7Rh",
                &format!("spotify:track:{}", "a".repeat(4_986)),
            );
        let (plays, _) = read(&extended(&entry), FileKind::Extended).unwrap();
        let play = &plays[0];
        assert_eq!(
            play.track_name.chars().count(),
            crate::domain::names::MAX_NAME_CHARS
        );
        assert!(play.track_name.ends_with('…'));
        assert_eq!(play.artist_name, "Band");
        assert_eq!(play.track_id, None, "keyed by its names, as a local file");
    }

    #[test]
    fn plays_arrive_in_batches_and_a_resume_skips_what_was_read() {
        let many = vec![TRACK; BATCH * 2 + 7].join(",");
        let json = extended(&many);
        let mut sizes = Vec::new();
        let counts = read_file(
            json.as_bytes(),
            "f.json",
            FileKind::Extended,
            u64::MAX,
            0,
            &mut |b, c| {
                assert_eq!(b.len() as u64, c.plays);
                sizes.push(b.len());
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(sizes, vec![BATCH, BATCH, 7]);
        assert_eq!(counts.plays, (BATCH * 2 + 7) as u64);
        let mut seen = 0;
        let resumed = read_file(
            json.as_bytes(),
            "f.json",
            FileKind::Extended,
            u64::MAX,
            BATCH as u64,
            &mut |b, _| {
                seen += b.len();
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(seen, BATCH + 7);
        assert_eq!(
            resumed.entries,
            (BATCH * 2 + 7) as u64,
            "every entry is counted as read"
        );
        // A failing store stops the reading and says why.
        let err = read_file(
            json.as_bytes(),
            "f.json",
            FileKind::Extended,
            u64::MAX,
            0,
            &mut |_, _| Err("the analytics node is down".into()),
        )
        .unwrap_err();
        assert_eq!(err, ExportError::Store("the analytics node is down".into()));
    }

    fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        let mut writer = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, body) in files {
            writer.start_file(*name, options).unwrap();
            writer.write_all(body).unwrap();
        }
        writer.finish().unwrap();
        out.into_inner()
    }

    #[test]
    fn a_zip_is_read_file_by_file_in_name_order_and_resumes() {
        let second = extended(&[TRACK, SHORT].join(","));
        let first = extended(&[LOCAL, EPISODE].join(","));
        let bytes = zip_of(&[
            (
                "Spotify Extended Streaming History/Streaming_History_Audio_2024_1.json",
                second.as_bytes(),
            ),
            (
                "Spotify Extended Streaming History/ReadMeFirst_ExtendedStreamingHistory.pdf",
                b"%PDF",
            ),
            (
                "Spotify Extended Streaming History/Streaming_History_Audio_2023_0.json",
                first.as_bytes(),
            ),
        ]);
        assert_eq!(sniff(&bytes).unwrap(), Upload::Zip);
        let mut names = Vec::new();
        let counts = read_zip(Cursor::new(&bytes), Limits::default(), 0, &mut |b, _| {
            names.extend(b.into_iter().map(|p| p.track_name));
            Ok(())
        })
        .unwrap();
        assert_eq!(names, vec!["Home Demo", "Song"], "2023 before 2024");
        assert_eq!((counts.files, counts.entries, counts.plays), (2, 4, 2));
        let mut again = Vec::new();
        read_zip(Cursor::new(&bytes), Limits::default(), 3, &mut |b, _| {
            again.extend(b.into_iter().map(|p| p.track_name));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            again,
            Vec::<String>::new(),
            "entry 4 is the short one: nothing new"
        );
        let mut two = Vec::new();
        read_zip(Cursor::new(&bytes), Limits::default(), 2, &mut |b, _| {
            two.extend(b.into_iter().map(|p| p.track_name));
            Ok(())
        })
        .unwrap();
        assert_eq!(two, vec!["Song"]);
    }

    #[test]
    fn other_uploads_are_refused_with_a_reason() {
        assert_eq!(sniff(b"\xEF\xBB\xBF  [{").unwrap(), Upload::Json);
        assert_eq!(sniff(b"%PDF-1.7").unwrap_err(), ExportError::NotZipOrJson);
        assert_eq!(sniff(b"").unwrap_err(), ExportError::NotZipOrJson);
        // Another kind of export: account data without streaming history.
        let bytes = zip_of(&[
            ("Spotify Account Data/Userdata.json", b"{}"),
            ("Spotify Account Data/Playlist1.json", b"{}"),
        ]);
        let err = read_zip(
            Cursor::new(&bytes),
            Limits::default(),
            0,
            &mut |_, _| Ok(()),
        )
        .unwrap_err();
        assert!(matches!(err, ExportError::NoHistory(_)), "{err}");
        assert!(err.to_string().contains("Userdata.json"), "{err}");
        // A truncated ZIP.
        let err = read_zip(
            Cursor::new(&bytes[..bytes.len() / 2]),
            Limits::default(),
            0,
            &mut |_, _| Ok(()),
        )
        .unwrap_err();
        assert!(matches!(err, ExportError::BadZip(_)), "{err}");
    }

    #[test]
    fn a_zip_bomb_is_refused_before_it_is_unpacked() {
        let zeros = vec![b' '; 4 * 1024 * 1024];
        let bytes = zip_of(&[("Streaming_History_Audio_2024_0.json", &zeros)]);
        assert!(bytes.len() < 40_000, "{} bytes packed", bytes.len());
        let mut called = false;
        let err = read_zip(Cursor::new(&bytes), Limits::default(), 0, &mut |_, _| {
            called = true;
            Ok(())
        })
        .unwrap_err();
        assert!(matches!(err, ExportError::TooBig(_)), "{err}");
        assert!(!called);
        // A file whose size the archive understates is cut at the limit as it is read.
        let err = read_file(
            &zeros[..],
            "f.json",
            FileKind::Extended,
            1024,
            0,
            &mut |_, _| Ok(()),
        )
        .unwrap_err();
        assert!(matches!(err, ExportError::TooBig(_)), "{err}");
    }

    /// `bytes` with every size the archive declares for its files set to `size`.
    fn understated(mut bytes: Vec<u8>, size: u32) -> Vec<u8> {
        let mut i = 0;
        while i + 30 < bytes.len() {
            let at = match &bytes[i..i + 4] {
                b"PK\x03\x04" => Some(22),
                b"PK\x01\x02" => Some(24),
                _ => None,
            };
            if let Some(at) = at {
                bytes[i + at..i + at + 4].copy_from_slice(&size.to_le_bytes());
            }
            i += 1;
        }
        bytes
    }

    #[test]
    fn zip_limits_count_the_bytes_actually_inflated() {
        // 8 MB of blanks in one file, declared as 1,000 bytes: within every declared
        // limit, 1,000 times its packed size in fact. Reading stops at the declared size
        // (the zip crate checks it too) and says why, not "not valid JSON".
        let blanks = vec![b' '; 8 * 1024 * 1024];
        let bytes = understated(
            zip_of(&[("Streaming_History_Audio_2024_0.json", &blanks)]),
            1_000,
        );
        let mut archive = zip::ZipArchive::new(Cursor::new(&bytes)).unwrap();
        assert!(history_files(&mut archive, Limits::default()).is_ok());
        let err = read_zip(
            Cursor::new(&bytes),
            Limits::default(),
            0,
            &mut |_, _| Ok(()),
        )
        .unwrap_err();
        assert!(matches!(err, ExportError::TooBig(_)), "{err}");
        assert!(err.to_string().contains("unpacks to more than"), "{err}");
    }
}
