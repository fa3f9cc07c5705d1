//! Movement between syncs and rank over time, computed from the MongoDB snapshot history.
//! Pure functions over payloads, plus [`load_view`], which reads the snapshots.

pub use crate::domain::history::{
    Change, HistoryView, ListChanges, Movement, RankHistory, RankSeries,
};
use crate::domain::{TimeRange, TopPayload};
use crate::server::store::mongo::Mongo;
use std::collections::{HashMap, HashSet};

/// Snapshots read when the caller does not say, and the bounds of what it may ask: two to
/// compare, fifty at most (each is a full payload of up to ~200 items).
pub const DEFAULT_SNAPSHOTS: u32 = 10;
pub const MIN_SNAPSHOTS: u32 = 2;
pub const MAX_SNAPSHOTS: u32 = 50;
/// Items per list that get a rank-over-time series.
pub const HISTORY_TOP_N: usize = 10;

/// How many snapshots to read for a requested `limit`.
pub fn snapshot_limit(requested: Option<u32>) -> i64 {
    i64::from(
        requested
            .unwrap_or(DEFAULT_SNAPSHOTS)
            .clamp(MIN_SNAPSHOTS, MAX_SNAPSHOTS),
    )
}

/// One list entry, whatever its kind.
struct Ranked<'a> {
    id: &'a str,
    name: &'a str,
    rank: u16,
}

fn artists(payload: &TopPayload) -> Vec<Ranked<'_>> {
    by_rank(payload.artists.iter().map(|a| Ranked {
        id: &a.id,
        name: &a.name,
        rank: a.rank,
    }))
}

fn tracks(payload: &TopPayload) -> Vec<Ranked<'_>> {
    by_rank(payload.tracks.iter().map(|t| Ranked {
        id: &t.id,
        name: &t.name,
        rank: t.rank,
    }))
}

/// In rank order, each id once (its best rank): lists are ranked 1..N by the sync, but
/// nothing here should misbehave on a snapshot that is not.
fn by_rank<'a>(items: impl Iterator<Item = Ranked<'a>>) -> Vec<Ranked<'a>> {
    let mut items: Vec<Ranked<'a>> = items.collect();
    items.sort_by_key(|item| item.rank);
    let mut seen = HashSet::new();
    items.retain(|item| seen.insert(item.id));
    items
}

/// The latest lists against the previous sync's. With no previous sync, `first_sync` is set
/// and every `previous_rank` is `None`.
pub fn changes(previous: Option<&TopPayload>, current: &TopPayload) -> ListChanges {
    ListChanges {
        first_sync: previous.is_none(),
        artists: diff(previous.map(artists).as_deref(), &artists(current)),
        tracks: diff(previous.map(tracks).as_deref(), &tracks(current)),
    }
}

fn diff(previous: Option<&[Ranked<'_>]>, current: &[Ranked<'_>]) -> Vec<Change> {
    let previous = previous.unwrap_or_default();
    let previous_rank: HashMap<&str, u16> =
        previous.iter().map(|item| (item.id, item.rank)).collect();
    let current_ids: HashSet<&str> = current.iter().map(|item| item.id).collect();
    let stayed_or_new = current.iter().map(|item| Change {
        id: item.id.to_string(),
        name: item.name.to_string(),
        rank: Some(item.rank),
        previous_rank: previous_rank.get(item.id).copied(),
    });
    let left = previous
        .iter()
        .filter(|item| !current_ids.contains(item.id))
        .map(|item| Change {
            id: item.id.to_string(),
            name: item.name.to_string(),
            rank: None,
            previous_rank: Some(item.rank),
        });
    stayed_or_new.chain(left).collect()
}

/// Rank over time of the newest snapshot's `top_n` artists and tracks, one point per
/// snapshot (`None` where the item was not in that snapshot's list).
pub fn rank_history(snapshots_oldest_first: &[TopPayload], top_n: usize) -> RankHistory {
    let Some(newest) = snapshots_oldest_first.last() else {
        return RankHistory::default();
    };
    RankHistory {
        synced_at: snapshots_oldest_first
            .iter()
            .map(|s| s.synced_at.clone())
            .collect(),
        artists: series(snapshots_oldest_first, newest, top_n, artists),
        tracks: series(snapshots_oldest_first, newest, top_n, tracks),
    }
}

fn series(
    snapshots: &[TopPayload],
    newest: &TopPayload,
    top_n: usize,
    list: for<'p> fn(&'p TopPayload) -> Vec<Ranked<'p>>,
) -> Vec<RankSeries> {
    let ranks: Vec<HashMap<&str, u16>> = snapshots
        .iter()
        .map(|s| {
            list(s)
                .into_iter()
                .map(|item| (item.id, item.rank))
                .collect()
        })
        .collect();
    list(newest)
        .into_iter()
        .take(top_n)
        .map(|item| RankSeries {
            id: item.id.to_string(),
            name: item.name.to_string(),
            points: ranks.iter().map(|r| r.get(item.id).copied()).collect(),
        })
        .collect()
}

/// The history panel for one user and range: the latest `limit` snapshots, the latest
/// against the one before, and rank over time of the top [`HISTORY_TOP_N`].
pub async fn load_view(
    mongo: &Mongo,
    spotify_id: &str,
    range: TimeRange,
    limit: i64,
) -> Result<HistoryView, mongodb::error::Error> {
    let mut snapshots: Vec<TopPayload> = mongo
        .history(spotify_id, range, limit)
        .await?
        .into_iter()
        .map(|(_, payload)| payload)
        .collect();
    snapshots.reverse(); // oldest first
    let Some((current, earlier)) = snapshots.split_last() else {
        return Ok(HistoryView {
            changes: ListChanges {
                first_sync: true,
                ..ListChanges::default()
            },
            history: RankHistory::default(),
        });
    };
    Ok(HistoryView {
        changes: changes(earlier.last(), current),
        history: rank_history(&snapshots, HISTORY_TOP_N),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ArtistRef, Genres, TopArtist, TopTrack};

    /// A payload whose artists are `ids` in rank order (and tracks `t` + the same ids).
    fn payload(synced_at: &str, ids: &[&str]) -> TopPayload {
        TopPayload {
            spotify_id: "listener".into(),
            time_range: TimeRange::ShortTerm,
            sync_id: 1,
            synced_at: synced_at.into(),
            artists: ids
                .iter()
                .enumerate()
                .map(|(i, id)| TopArtist {
                    rank: i as u16 + 1,
                    id: id.to_string(),
                    name: id.to_uppercase(),
                    genres: None,
                    image_url: None,
                    popularity: None,
                })
                .collect(),
            tracks: ids
                .iter()
                .enumerate()
                .map(|(i, id)| TopTrack {
                    rank: i as u16 + 1,
                    id: format!("t{id}"),
                    name: format!("Track {id}"),
                    artists: vec![ArtistRef {
                        id: id.to_string(),
                        name: id.to_uppercase(),
                    }],
                    album: None,
                    image_url: None,
                    duration_ms: None,
                })
                .collect(),
            genres: Genres::Unavailable,
        }
    }

    fn moves(list: &[Change]) -> Vec<(&str, Movement)> {
        list.iter().map(|c| (c.id.as_str(), c.movement())).collect()
    }

    #[test]
    fn changes_show_up_down_same_new_and_left() {
        let before = payload("2026-11-01T00:00:00.000Z", &["a", "b", "c", "d", "e"]);
        let now = payload("2026-11-08T00:00:00.000Z", &["e", "b", "a", "f"]);
        let changes = changes(Some(&before), &now);
        assert!(!changes.first_sync);
        assert_eq!(
            moves(&changes.artists),
            vec![
                ("e", Movement::Up(4)),
                ("b", Movement::Same),
                ("a", Movement::Down(2)),
                ("f", Movement::New),
                // Those that left, in their previous order.
                ("c", Movement::Left),
                ("d", Movement::Left),
            ]
        );
        assert_eq!(
            changes.artists[0],
            Change {
                id: "e".into(),
                name: "E".into(),
                rank: Some(1),
                previous_rank: Some(5)
            }
        );
        assert_eq!(changes.artists[4].rank, None);
        assert_eq!(changes.artists[4].previous_rank, Some(3));
        // Tracks are compared on their own ids.
        assert_eq!(changes.tracks[0].id, "te");
        assert_eq!(changes.tracks[0].movement(), Movement::Up(4));
        assert_eq!(changes.tracks.len(), 6);
    }

    #[test]
    fn changes_follow_rank_not_list_order() {
        let before = payload("2026-11-01T00:00:00.000Z", &["a", "b"]);
        let mut now = payload("2026-11-08T00:00:00.000Z", &["b", "a"]);
        now.artists.reverse(); // rank 2 first in the Vec
        let changes = changes(Some(&before), &now);
        assert_eq!(
            moves(&changes.artists),
            vec![("b", Movement::Up(1)), ("a", Movement::Down(1))]
        );
    }

    #[test]
    fn a_first_sync_has_no_previous_ranks_and_says_so() {
        let now = payload("2026-11-08T00:00:00.000Z", &["a", "b"]);
        let changes = changes(None, &now);
        assert!(changes.first_sync);
        assert_eq!(changes.artists.len(), 2);
        assert!(changes
            .artists
            .iter()
            .chain(&changes.tracks)
            .all(|c| c.previous_rank.is_none() && c.rank.is_some()));
    }

    #[test]
    fn rank_history_follows_the_newest_top_n_with_gaps() {
        let snapshots = [
            payload("2026-11-01T00:00:00.000Z", &["a", "b", "c"]),
            payload("2026-11-08T00:00:00.000Z", &["b", "x", "a"]),
            payload("2026-11-15T00:00:00.000Z", &["c", "a", "b", "z"]),
        ];
        let history = rank_history(&snapshots, 2);
        assert_eq!(
            history.synced_at,
            vec![
                "2026-11-01T00:00:00.000Z",
                "2026-11-08T00:00:00.000Z",
                "2026-11-15T00:00:00.000Z"
            ]
        );
        assert_eq!(
            history.artists,
            vec![
                RankSeries {
                    id: "c".into(),
                    name: "C".into(),
                    // Absent from the middle snapshot.
                    points: vec![Some(3), None, Some(1)],
                },
                RankSeries {
                    id: "a".into(),
                    name: "A".into(),
                    points: vec![Some(1), Some(3), Some(2)],
                },
            ]
        );
        let track_ids: Vec<&str> = history.tracks.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(track_ids, vec!["tc", "ta"]);
        assert_eq!(history.tracks[0].points, vec![Some(3), None, Some(1)]);
    }

    #[test]
    fn rank_history_of_nothing_is_empty_and_top_n_caps_at_the_list() {
        assert_eq!(rank_history(&[], 10), RankHistory::default());
        let one = [payload("2026-11-01T00:00:00.000Z", &["a"])];
        let history = rank_history(&one, 10);
        assert_eq!(history.artists.len(), 1);
        assert_eq!(history.artists[0].points, vec![Some(1)]);
    }

    #[test]
    fn snapshot_limit_defaults_to_ten_within_two_and_fifty() {
        assert_eq!(snapshot_limit(None), 10);
        assert_eq!(snapshot_limit(Some(0)), 2);
        assert_eq!(snapshot_limit(Some(1)), 2);
        assert_eq!(snapshot_limit(Some(25)), 25);
        assert_eq!(snapshot_limit(Some(1000)), 50);
    }
}
