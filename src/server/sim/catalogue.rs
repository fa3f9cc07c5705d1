//! The simulated music catalogue: ~250 artists with invented, pronounceable names, their
//! albums and tracks, all derived from the seed. Same seed, same catalogue, same ids, on
//! every machine and every run.

use super::rng::{base62_id, hash, tag, SplitMix};
use std::collections::{HashMap, HashSet};

/// Real genre names, ordered around a circle so neighbours are related: an artist's extra
/// genres come from its neighbours, which makes tastes (and genre shares) look plausible.
pub(crate) const GENRES: [&str; 16] = [
    "indie folk",
    "indie pop",
    "dream pop",
    "shoegaze",
    "ambient",
    "techno",
    "house",
    "afrobeats",
    "hip hop",
    "r&b",
    "neo soul",
    "jazz",
    "city pop",
    "k-pop",
    "pop",
    "dangdut",
];

pub(crate) const ARTIST_COUNT: usize = 250;

pub(crate) struct Artist {
    pub id: String,
    pub name: String,
    /// Indices into [`GENRES`]; the first is the main genre.
    pub genres: Vec<usize>,
    pub popularity: u8,
    pub followers: u64,
    pub tracks: Vec<usize>,
}

pub(crate) struct Album {
    pub id: String,
    pub name: String,
    pub artist: usize,
    pub album_type: &'static str,
    /// `YYYY-MM-DD` (precision "day").
    pub release_date: String,
    pub total_tracks: u32,
}

pub(crate) struct Track {
    pub id: String,
    pub name: String,
    pub artist: usize,
    /// A second credited artist ("feat."), from a related genre.
    pub featured: Option<usize>,
    pub album: usize,
    pub duration_ms: u32,
    pub explicit: bool,
    pub popularity: u8,
    pub track_number: u32,
}

pub(crate) struct Catalogue {
    pub seed: u64,
    pub artists: Vec<Artist>,
    pub albums: Vec<Album>,
    pub tracks: Vec<Track>,
    artist_by_id: HashMap<String, usize>,
    album_by_id: HashMap<String, usize>,
    track_by_id: HashMap<String, usize>,
}

const ONSETS: [&str; 24] = [
    "b", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "y", "z", "l",
    "m", "br", "st", "sh", "ch",
];
const VOWELS: [&str; 10] = ["a", "e", "i", "o", "u", "a", "e", "ai", "ou", "ia"];
const CODAS: [&str; 10] = ["", "", "", "", "n", "r", "l", "s", "m", "h"];

const ADJECTIVES: [&str; 32] = [
    "Velvet", "Golden", "Paper", "Neon", "Silent", "Hollow", "Electric", "Lunar", "Crystal",
    "Midnight", "Wild", "Quiet", "Amber", "Cosmic", "Faded", "Bright", "Tender", "Violet", "Salt",
    "Honey", "Static", "Sleepy", "Glass", "Northern", "Coral", "Broken", "Secret", "Distant",
    "Copper", "Monsoon", "Silver", "Slow",
];
const NOUNS: [&str; 32] = [
    "Harbor",
    "Tiger",
    "Garden",
    "Lantern",
    "River",
    "Satellite",
    "Orchard",
    "Mirror",
    "Echo",
    "Meadow",
    "Signal",
    "Comet",
    "Island",
    "Parade",
    "Window",
    "Ocean",
    "Forest",
    "Machine",
    "Ribbon",
    "Engine",
    "Summer",
    "Avenue",
    "Cathedral",
    "Balloon",
    "Monument",
    "Canyon",
    "Pilot",
    "Feather",
    "Season",
    "Bicycle",
    "Lighthouse",
    "Rain",
];

/// A pronounceable invented word of `syllables` syllables, capitalised.
fn word(rng: &mut SplitMix, syllables: u64) -> String {
    let mut w = String::new();
    for i in 0..syllables {
        w.push_str(rng.pick(&ONSETS));
        w.push_str(rng.pick(&VOWELS));
        // Codas only at the end keep the words easy to say ("Taviron", not "Tarvmixon").
        if i + 1 == syllables {
            w.push_str(rng.pick(&CODAS));
        }
    }
    let mut chars = w.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => w,
    }
}

fn artist_name(rng: &mut SplitMix) -> String {
    match rng.below(10) {
        // "Nali Koroma": a person.
        0..=3 => {
            let (first, last) = (2, rng.range(2, 3));
            format!("{} {}", word(rng, first), word(rng, last))
        }
        // "Lumora": a mononym.
        4..=5 => {
            let syllables = rng.range(2, 3);
            word(rng, syllables)
        }
        // "The Velvet Harbors": a band.
        6..=7 => format!("The {} {}s", rng.pick(&ADJECTIVES), rng.pick(&NOUNS)),
        // "Neon Satellite": a project.
        _ => format!("{} {}", rng.pick(&ADJECTIVES), rng.pick(&NOUNS)),
    }
}

fn title(rng: &mut SplitMix) -> String {
    match rng.below(6) {
        0 => rng.pick(&NOUNS).to_string(),
        1 => format!("{} {}", rng.pick(&NOUNS), rng.pick(&NOUNS)),
        2 => format!("{} of the {}", rng.pick(&NOUNS), rng.pick(&NOUNS)),
        3 => {
            let syllables = rng.range(2, 3);
            word(rng, syllables)
        }
        _ => format!("{} {}", rng.pick(&ADJECTIVES), rng.pick(&NOUNS)),
    }
}

/// Domain tags keep the hash streams of different object kinds apart.
fn kind_key(seed: u64, kind: &str, index: usize) -> u64 {
    hash(seed, &[tag(kind), index as u64])
}

impl Catalogue {
    pub(crate) fn build(seed: u64) -> Self {
        let mut artists = Vec::with_capacity(ARTIST_COUNT);
        let mut names = HashSet::new();
        for index in 0..ARTIST_COUNT {
            let mut rng = SplitMix::new(kind_key(seed, "artist", index));
            // Distinct names: a clash just draws again from the same stream (deterministic).
            let name = loop {
                let candidate = artist_name(&mut rng);
                if names.insert(candidate.clone()) {
                    break candidate;
                }
            };
            // Spread main genres evenly, then 0-2 neighbours on the circle.
            let main = index % GENRES.len();
            let mut genres = vec![main];
            for _ in 0..rng.below(3) {
                let step = rng.range(1, 2) as usize;
                let neighbour = if rng.chance(0.5) {
                    (main + step) % GENRES.len()
                } else {
                    (main + GENRES.len() - step) % GENRES.len()
                };
                if !genres.contains(&neighbour) {
                    genres.push(neighbour);
                }
            }
            // Most artists are niche; a few are huge. Squaring a uniform skews towards 0.
            let u = rng.below(1000) as f64 / 1000.0;
            let popularity = (12.0 + 83.0 * u * u).round() as u8;
            let followers = u64::from(popularity).pow(4) * 11 / 10 + rng.below(5000);
            artists.push(Artist {
                id: base62_id(kind_key(seed, "artist-id", index)),
                name,
                genres,
                popularity,
                followers,
                tracks: Vec::new(),
            });
        }

        let mut albums = Vec::new();
        let mut tracks = Vec::new();
        for (artist, entry) in artists.iter_mut().enumerate() {
            let mut rng = SplitMix::new(kind_key(seed, "discography", artist));
            let album_count = rng.range(3, 5);
            let mut track_budget = rng.range(8, 12);
            for a in 0..album_count {
                let album_index = albums.len();
                let is_single = a > 0 && rng.chance(0.35);
                // Every album gets at least one catalogue track; the last takes the rest.
                let remaining_albums = album_count - a;
                let in_catalogue = if remaining_albums == 1 {
                    track_budget.max(1)
                } else if is_single {
                    1
                } else {
                    rng.range(1, (track_budget - (remaining_albums - 1)).clamp(1, 4))
                };
                track_budget = track_budget.saturating_sub(in_catalogue);
                let total_tracks = if is_single {
                    in_catalogue.max(rng.range(1, 3))
                } else {
                    in_catalogue.max(rng.range(8, 14))
                };
                let year = rng.range(1996, 2025);
                let month = rng.range(1, 12);
                let day = rng.range(1, 28);
                albums.push(Album {
                    id: base62_id(kind_key(seed, "album-id", album_index)),
                    name: title(&mut rng),
                    artist,
                    album_type: if is_single { "single" } else { "album" },
                    release_date: format!("{year:04}-{month:02}-{day:02}"),
                    total_tracks: total_tracks as u32,
                });
                let stride = total_tracks / in_catalogue;
                for t in 0..in_catalogue {
                    let track_index = tracks.len();
                    let main_genre = entry.genres[0];
                    let featured = rng.chance(0.2).then(|| {
                        // Someone from the same or a neighbouring genre, never themselves.
                        let genre =
                            (main_genre + rng.below(3) as usize + GENRES.len() - 1) % GENRES.len();
                        let slot = rng.below((ARTIST_COUNT / GENRES.len()) as u64) as usize;
                        let other = (genre + slot * GENRES.len()) % ARTIST_COUNT;
                        if other == artist {
                            (other + GENRES.len()) % ARTIST_COUNT
                        } else {
                            other
                        }
                    });
                    let base_pop = i64::from(entry.popularity);
                    let popularity = (base_pop + rng.range(0, 30) as i64 - 18).clamp(0, 100) as u8;
                    let explicit_odds = if GENRES[main_genre] == "hip hop" {
                        0.6
                    } else {
                        0.1
                    };
                    tracks.push(Track {
                        id: base62_id(kind_key(seed, "track-id", track_index)),
                        name: title(&mut rng),
                        artist,
                        featured,
                        album: album_index,
                        duration_ms: rng.range(135_000, 330_000) as u32,
                        explicit: rng.chance(explicit_odds),
                        popularity,
                        track_number: (1 + t * stride.max(1)) as u32,
                    });
                    entry.tracks.push(track_index);
                }
            }
        }

        let artist_by_id = artists
            .iter()
            .enumerate()
            .map(|(i, a)| (a.id.clone(), i))
            .collect();
        let album_by_id = albums
            .iter()
            .enumerate()
            .map(|(i, a)| (a.id.clone(), i))
            .collect();
        let track_by_id = tracks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.clone(), i))
            .collect();
        Catalogue {
            seed,
            artists,
            albums,
            tracks,
            artist_by_id,
            album_by_id,
            track_by_id,
        }
    }

    pub(crate) fn artist_by_id(&self, id: &str) -> Option<&Artist> {
        self.artist_by_id.get(id).map(|&i| &self.artists[i])
    }

    pub(crate) fn album_by_id(&self, id: &str) -> Option<&Album> {
        self.album_by_id.get(id).map(|&i| &self.albums[i])
    }

    pub(crate) fn track_by_id(&self, id: &str) -> Option<&Track> {
        self.track_by_id.get(id).map(|&i| &self.tracks[i])
    }

    /// Rename artists, albums and tracks with what a hostile or merely unusual name from
    /// Spotify can hold (`DEMO_HOSTILE_NAMES`): markup that closes `<title>` or an attribute,
    /// script, right-to-left text, emoji, ampersands and 300-character names. Ids stay the
    /// same; names stay distinct (each keeps its ordinary name inside).
    pub(crate) fn make_hostile(&mut self) {
        for (i, artist) in self.artists.iter_mut().enumerate() {
            artist.name = hostile_name(i, &artist.name);
        }
        for (i, album) in self.albums.iter_mut().enumerate() {
            album.name = hostile_name(i + 3, &album.name);
        }
        for (i, track) in self.tracks.iter_mut().enumerate() {
            track.name = hostile_name(i + 5, &track.name);
        }
    }
}

/// Payloads [`Catalogue::make_hostile`] cycles through; `{}` is the ordinary name.
pub const HOSTILE_NAMES: [&str; 8] = [
    "</title><script>alert('title')</script>{}",
    "{}\"><img src=x onerror=alert('attr')>",
    "{}' onmouseover='alert(1)' data-x='",
    "\u{202e}{} مرحبا بالعالم",
    "🎧🔥 {} 👩🏽‍🎤",
    "{} & <b>Friends</b> &amp; </script><script>alert('json')</script>",
    "{}\u{2028}{{\"a\":1}}`${alert(1)}`",
    "{} ",
];

fn hostile_name(index: usize, ordinary: &str) -> String {
    let template = HOSTILE_NAMES[index % HOSTILE_NAMES.len()];
    let name = template.replace("{}", ordinary);
    if index % HOSTILE_NAMES.len() == HOSTILE_NAMES.len() - 1 {
        // A 300-character name: the ordinary one repeated.
        let mut long = name.clone();
        while long.chars().count() < 300 {
            long.push_str(ordinary);
            long.push(' ');
        }
        long.chars().take(300).collect()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_keep_ids_and_stay_distinct() {
        let plain = Catalogue::build(2026);
        let mut hostile = Catalogue::build(2026);
        hostile.make_hostile();
        assert_eq!(plain.artists[0].id, hostile.artists[0].id);
        let names: HashSet<&str> = hostile.artists.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names.len(), ARTIST_COUNT);
        assert!(hostile.artists[0].name.starts_with("</title><script>"));
        assert_eq!(hostile.artists[7].name.chars().count(), 300);
        assert!(hostile.tracks.iter().any(|t| t.name.contains("onerror=")));
    }

    #[test]
    fn catalogue_has_the_promised_shape() {
        let c = Catalogue::build(2026);
        assert_eq!(c.artists.len(), ARTIST_COUNT);
        let albums_per_artist = c.albums.len() as f64 / ARTIST_COUNT as f64;
        let tracks_per_artist = c.tracks.len() as f64 / ARTIST_COUNT as f64;
        assert!(
            (3.0..=5.0).contains(&albums_per_artist),
            "{albums_per_artist}"
        );
        assert!(
            (8.0..=12.0).contains(&tracks_per_artist),
            "{tracks_per_artist}"
        );
        for artist in &c.artists {
            assert!((1..=3).contains(&artist.genres.len()), "{}", artist.name);
            assert!(artist.popularity <= 100);
            assert!(!artist.tracks.is_empty());
        }
        assert!(c.tracks.iter().any(|t| t.featured.is_some()));
        for track in &c.tracks {
            assert_ne!(track.featured, Some(track.artist));
            let album = &c.albums[track.album];
            assert_eq!(album.artist, track.artist);
            assert!((1..=album.total_tracks).contains(&track.track_number));
        }
    }

    #[test]
    fn ids_and_names_are_unique() {
        let c = Catalogue::build(7);
        let ids: HashSet<&str> = c
            .artists
            .iter()
            .map(|a| a.id.as_str())
            .chain(c.albums.iter().map(|a| a.id.as_str()))
            .chain(c.tracks.iter().map(|t| t.id.as_str()))
            .collect();
        assert_eq!(ids.len(), c.artists.len() + c.albums.len() + c.tracks.len());
        let names: HashSet<&str> = c.artists.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names.len(), ARTIST_COUNT);
    }

    #[test]
    fn same_seed_same_catalogue_other_seed_other_catalogue() {
        let (a, b, other) = (
            Catalogue::build(1),
            Catalogue::build(1),
            Catalogue::build(2),
        );
        let names = |c: &Catalogue| c.artists.iter().map(|a| a.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&a), names(&b));
        assert_eq!(a.tracks[100].id, b.tracks[100].id);
        assert_ne!(names(&a), names(&other));
        assert_ne!(a.artists[0].id, other.artists[0].id);
    }

    #[test]
    fn lookups_find_by_id() {
        let c = Catalogue::build(3);
        let artist = &c.artists[42];
        assert_eq!(
            c.artist_by_id(&artist.id).map(|a| &a.name),
            Some(&artist.name)
        );
        assert!(c.artist_by_id("0000000000000000000000").is_none());
        let album = &c.albums[7];
        assert_eq!(c.album_by_id(&album.id).map(|a| &a.name), Some(&album.name));
        let track = &c.tracks[99];
        assert_eq!(c.track_by_id(&track.id).map(|t| &t.name), Some(&track.name));
    }
}
