//! Movement between syncs and rank over time, from the MongoDB snapshot history, for the
//! history page and its API. Pure functions over the ranks of snapshots, plus
//! [`load_view`], which reads exactly the snapshots it shows (the latest syncs PostgreSQL
//! knows, by `_id`, projected to ids, names and ranks) and caches the result per sync in
//! Redis: a view costs MongoDB once per new sync, whatever the history's length.

pub use crate::domain::history::{
    Change, HistoryView, ListChanges, Movement, RankHistory, RankSeries,
};
use crate::domain::{TimeRange, TopPayload};
use crate::server::store::Stores;
use mongodb::bson::doc;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};

/// Snapshots read when the caller does not say, and the bounds of what it may ask: two to
/// compare, fifty at most.
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

/// One list entry of a snapshot: all the history needs of it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RankedItem {
    pub id: String,
    pub name: String,
    pub rank: u16,
}

/// A snapshot's ranks: the projection of a history document that the history reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RankedSnapshot {
    pub sync_id: i64,
    /// RFC 3339 with milliseconds.
    pub synced_at: String,
    #[serde(default)]
    pub artists: Vec<RankedItem>,
    #[serde(default)]
    pub tracks: Vec<RankedItem>,
}

impl RankedSnapshot {
    /// The MongoDB projection that reads a snapshot as this type.
    pub fn projection() -> mongodb::bson::Document {
        doc! {
            "sync_id": 1, "synced_at": 1,
            "artists.id": 1, "artists.name": 1, "artists.rank": 1,
            "tracks.id": 1, "tracks.name": 1, "tracks.rank": 1,
        }
    }
}

impl From<&TopPayload> for RankedSnapshot {
    fn from(payload: &TopPayload) -> Self {
        RankedSnapshot {
            sync_id: payload.sync_id,
            synced_at: payload.synced_at.clone(),
            artists: payload
                .artists
                .iter()
                .map(|a| RankedItem {
                    id: a.id.clone(),
                    name: a.name.clone(),
                    rank: a.rank,
                })
                .collect(),
            tracks: payload
                .tracks
                .iter()
                .map(|t| RankedItem {
                    id: t.id.clone(),
                    name: t.name.clone(),
                    rank: t.rank,
                })
                .collect(),
        }
    }
}

fn artists(snapshot: &RankedSnapshot) -> Vec<&RankedItem> {
    by_rank(&snapshot.artists)
}

fn tracks(snapshot: &RankedSnapshot) -> Vec<&RankedItem> {
    by_rank(&snapshot.tracks)
}

/// In rank order, each id once (its best rank): lists are ranked 1..N by the sync, but
/// nothing here should misbehave on a snapshot that is not.
fn by_rank(items: &[RankedItem]) -> Vec<&RankedItem> {
    let mut items: Vec<&RankedItem> = items.iter().collect();
    items.sort_by_key(|item| item.rank);
    let mut seen = HashSet::new();
    items.retain(|item| seen.insert(item.id.as_str()));
    items
}

/// The latest lists against the previous sync's. With no previous sync, `first_sync` is set
/// and every `previous_rank` is `None`.
pub fn changes(previous: Option<&RankedSnapshot>, current: &RankedSnapshot) -> ListChanges {
    ListChanges {
        first_sync: previous.is_none(),
        artists: diff(previous.map(artists).as_deref(), &artists(current)),
        tracks: diff(previous.map(tracks).as_deref(), &tracks(current)),
    }
}

fn diff(previous: Option<&[&RankedItem]>, current: &[&RankedItem]) -> Vec<Change> {
    let previous = previous.unwrap_or_default();
    let previous_rank: HashMap<&str, u16> = previous
        .iter()
        .map(|item| (item.id.as_str(), item.rank))
        .collect();
    let current_ids: HashSet<&str> = current.iter().map(|item| item.id.as_str()).collect();
    let stayed_or_new = current.iter().map(|item| Change {
        id: item.id.clone(),
        name: item.name.clone(),
        rank: Some(item.rank),
        previous_rank: previous_rank.get(item.id.as_str()).copied(),
    });
    let left = previous
        .iter()
        .filter(|item| !current_ids.contains(item.id.as_str()))
        .map(|item| Change {
            id: item.id.clone(),
            name: item.name.clone(),
            rank: None,
            previous_rank: Some(item.rank),
        });
    stayed_or_new.chain(left).collect()
}

/// Rank over time of the newest snapshot's `top_n` artists and tracks, one point per
/// snapshot (`None` where the item was not in that snapshot's list).
pub fn rank_history(snapshots_oldest_first: &[RankedSnapshot], top_n: usize) -> RankHistory {
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
    snapshots: &[RankedSnapshot],
    newest: &RankedSnapshot,
    top_n: usize,
    list: for<'p> fn(&'p RankedSnapshot) -> Vec<&'p RankedItem>,
) -> Vec<RankSeries> {
    let ranks: Vec<HashMap<&str, u16>> = snapshots
        .iter()
        .map(|s| {
            list(s)
                .into_iter()
                .map(|item| (item.id.as_str(), item.rank))
                .collect()
        })
        .collect();
    list(newest)
        .into_iter()
        .take(top_n)
        .map(|item| RankSeries {
            id: item.id.clone(),
            name: item.name.clone(),
            points: ranks
                .iter()
                .map(|r| r.get(item.id.as_str()).copied())
                .collect(),
        })
        .collect()
}

/// The view of some snapshots of one range (any order).
pub fn view(mut snapshots: Vec<RankedSnapshot>) -> HistoryView {
    snapshots.sort_by(|a, b| (&a.synced_at, a.sync_id).cmp(&(&b.synced_at, b.sync_id)));
    let Some((current, earlier)) = snapshots.split_last() else {
        return HistoryView {
            sync_id: None,
            changes: ListChanges {
                first_sync: true,
                ..ListChanges::default()
            },
            history: RankHistory::default(),
        };
    };
    HistoryView {
        sync_id: Some(current.sync_id),
        changes: changes(earlier.last(), current),
        history: rank_history(&snapshots, HISTORY_TOP_N),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("the database is unavailable: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the sync history (MongoDB) is unavailable: {0}")]
    History(#[from] mongodb::error::Error),
}

/// The ids of a user's latest `limit` successful syncs, newest first: the record of which
/// snapshots the history holds.
pub async fn recent_syncs(
    pool: &sqlx::PgPool,
    user_id: i64,
    limit: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM sync_runs WHERE user_id = $1 AND status = 'succeeded'
          ORDER BY finished_at DESC, id DESC LIMIT $2",
    )
    .bind(user_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The history page's view for one user and range: the latest `limit` syncs, the latest
/// against the one before, and rank over time of the top [`HISTORY_TOP_N`]. Cached per
/// (newest sync, limit) once MongoDB holds that newest snapshot; until it does (the outbox
/// delivers it moments after the sync), the view shows what MongoDB has and is not cached.
pub async fn load_view(
    stores: &Stores,
    cache_ttl: std::time::Duration,
    user_id: i64,
    spotify_id: &str,
    range: TimeRange,
    limit: i64,
) -> Result<HistoryView, HistoryError> {
    let syncs = recent_syncs(&stores.main, user_id, limit).await?;
    let Some(&newest) = syncs.first() else {
        return Ok(view(Vec::new()));
    };
    let key = stores.cache.key(&format!(
        "history:{spotify_id}:{}:{newest}:{limit}",
        range.as_str()
    ));
    match stores.cache.get_json::<HistoryView>(&key).await {
        Ok(Some(cached)) => return Ok(cached),
        Ok(None) => {}
        Err(e) => tracing::debug!(error = %e, "history cache unavailable"),
    }
    let ids: Vec<String> = syncs
        .iter()
        .map(|&run| super::run::snapshot_id(run, range))
        .collect();
    let snapshots: Vec<RankedSnapshot> = stores
        .mongo
        .snapshots_by_id(&ids, RankedSnapshot::projection())
        .await?;
    let view = view(snapshots);
    if view.sync_id == Some(newest) {
        match serde_json::to_string(&view) {
            Ok(json) => {
                if let Err(e) = stores.cache.set_json(&key, &json, cache_ttl).await {
                    tracing::debug!(error = %e, "history not cached");
                }
            }
            Err(e) => tracing::warn!(error = %e, "history view cannot be cached"),
        }
    }
    Ok(view)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot whose artists are `ids` in rank order (and tracks `t` + the same ids).
    fn payload(synced_at: &str, ids: &[&str]) -> RankedSnapshot {
        RankedSnapshot {
            sync_id: 1,
            synced_at: synced_at.into(),
            artists: ids
                .iter()
                .enumerate()
                .map(|(i, id)| RankedItem {
                    rank: i as u16 + 1,
                    id: id.to_string(),
                    name: id.to_uppercase(),
                })
                .collect(),
            tracks: ids
                .iter()
                .enumerate()
                .map(|(i, id)| RankedItem {
                    rank: i as u16 + 1,
                    id: format!("t{id}"),
                    name: format!("Track {id}"),
                })
                .collect(),
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
