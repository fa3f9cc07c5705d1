//! Names and ids from outside (Spotify's responses, a privacy export, the simulator) as the
//! app keeps and shows them. Every name passes [`bounded_name`] where it comes in, so one
//! listener's 1 MB track name cannot reach another listener's page (trending), and text
//! PostgreSQL refuses (U+0000) never reaches it.

/// The most characters a track, artist, album or genre name keeps.
pub const MAX_NAME_CHARS: usize = 512;
/// Ends a name that was cut.
pub const CUT_MARK: char = '…';

/// `raw` without control characters (U+0000 among them; a tab or line break becomes a
/// space), trimmed, and at most [`MAX_NAME_CHARS`] characters: a longer name is cut on a
/// character boundary and ends in [`CUT_MARK`]. A name that is fine is returned as it was,
/// without copying.
pub fn bounded_name(raw: String) -> String {
    let fine = raw.len() <= MAX_NAME_CHARS
        && !raw.chars().any(char::is_control)
        && raw.trim().len() == raw.len();
    if fine {
        return raw;
    }
    let mut clean = String::with_capacity(raw.len().min(MAX_NAME_CHARS * 4));
    let mut chars = 0;
    let mut cut = false;
    for c in raw.chars() {
        let c = match c {
            '\t' | '\n' | '\r' => ' ',
            c if c.is_control() => continue,
            c => c,
        };
        if c.is_whitespace() && clean.is_empty() {
            continue;
        }
        if chars == MAX_NAME_CHARS {
            cut = true;
            break;
        }
        clean.push(c);
        chars += 1;
    }
    let trimmed = clean.trim_end().len();
    clean.truncate(trimmed);
    if cut {
        // Room for the mark: the name stays within the bound with it.
        clean.pop();
        let trimmed = clean.trim_end().len();
        clean.truncate(trimmed);
        clean.push(CUT_MARK);
    }
    clean
}

/// [`bounded_name`] of an optional name; empty after cleaning is none.
pub fn bounded_optional(raw: Option<String>) -> Option<String> {
    raw.map(bounded_name).filter(|s| !s.is_empty())
}

/// A Spotify id as the Web API gives them: exactly 22 base-62 characters.
pub fn is_spotify_id(id: &str) -> bool {
    id.len() == 22 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The track id of a `spotify:track:` URI; anything else (a local file's URI, a 5,000
/// character string) is no track id.
pub fn track_id_of_uri(uri: &str) -> Option<&str> {
    uri.strip_prefix("spotify:track:")
        .filter(|id| is_spotify_id(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fine_name_is_kept_as_it_is() {
        for name in [
            "Song",
            "Björk",
            "🎧🔥 Ünïcode 👩🏽‍🎤",
            "a\u{2028}b",
            "</title><b>x",
        ] {
            assert_eq!(bounded_name(name.to_string()), name);
        }
        let exactly = "é".repeat(MAX_NAME_CHARS);
        assert_eq!(bounded_name(exactly.clone()), exactly);
    }

    #[test]
    fn control_characters_go_and_white_space_is_trimmed() {
        assert_eq!(bounded_name("Bad\0Name".into()), "BadName");
        assert_eq!(bounded_name("  Two\nLines\t ".into()), "Two Lines");
        assert_eq!(bounded_name("x\u{1f}y\u{7f}\u{85}".into()), "xy");
        assert_eq!(bounded_name("\0\0".into()), "");
        assert_eq!(bounded_optional(Some("\0 ".into())), None);
        assert_eq!(bounded_optional(Some(" A ".into())), Some("A".into()));
    }

    #[test]
    fn a_long_name_is_cut_on_a_character_and_marked() {
        let long = "ñ".repeat(1_000_000);
        let cut = bounded_name(long);
        assert_eq!(cut.chars().count(), MAX_NAME_CHARS);
        assert!(cut.ends_with(CUT_MARK));
        assert!(cut.starts_with("ññ"));
        let words = "word ".repeat(200);
        let cut = bounded_name(words);
        assert!(cut.chars().count() <= MAX_NAME_CHARS);
        assert!(cut.ends_with("w…"), "{cut}");
        // One over the bound is cut too.
        let over = "a".repeat(MAX_NAME_CHARS + 1);
        let cut = bounded_name(over);
        assert_eq!(cut.chars().count(), MAX_NAME_CHARS);
        assert!(cut.ends_with(CUT_MARK));
    }

    #[test]
    fn ids_and_track_uris_have_one_shape() {
        assert!(is_spotify_id("4iV5W9uYEdYUVa79Axb7Rh"));
        assert!(!is_spotify_id("4iV5W9uYEdYUVa79Axb7R"));
        assert!(!is_spotify_id("4iV5W9uYEdYUVa79Axb7Rh1"));
        assert!(!is_spotify_id("4iV5W9uYEdYUVa79Axb7R-"));
        assert_eq!(
            track_id_of_uri("spotify:track:4iV5W9uYEdYUVa79Axb7Rh"),
            Some("4iV5W9uYEdYUVa79Axb7Rh")
        );
        assert_eq!(track_id_of_uri("spotify:local:Me:Album:Song:180"), None);
        assert_eq!(
            track_id_of_uri(&format!("spotify:track:{}", "a".repeat(4_986))),
            None
        );
        assert_eq!(track_id_of_uri("spotify:track:"), None);
    }
}
