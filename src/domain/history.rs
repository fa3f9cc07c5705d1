//! How a person's top lists moved between syncs, as the UI shows it. Built on the server
//! from the MongoDB snapshot history (`server::sync::history`); plain data here so it
//! crosses to the browser.

use serde::{Deserialize, Serialize};

/// Where an item went between the previous sync and the latest one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "places", rename_all = "snake_case")]
pub enum Movement {
    /// Moved up this many places (previous 5, now 2: `Up(3)`).
    Up(u16),
    /// Moved down this many places.
    Down(u16),
    Same,
    /// In the latest list, not in the previous one.
    New,
    /// In the previous list, not in the latest one.
    Left,
}

impl Movement {
    /// How an item now at `rank` moved from `previous_rank` (`None`: it was not in the
    /// previous list).
    pub fn since(rank: u16, previous_rank: Option<u16>) -> Movement {
        match previous_rank {
            Some(before) if rank < before => Movement::Up(before - rank),
            Some(before) if rank > before => Movement::Down(rank - before),
            Some(_) => Movement::Same,
            None => Movement::New,
        }
    }
}

/// "2026-11-21T10:15:00.000Z" → "11-21 10:15" (UTC, as stored): a chart or table column.
pub fn time_label(rfc3339: &str) -> String {
    match (rfc3339.get(5..10), rfc3339.get(11..16)) {
        (Some(day), Some(time)) => format!("{day} {time}"),
        _ => rfc3339.to_string(),
    }
}

/// One artist or track of the latest list (or one that left it), with both ranks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub id: String,
    pub name: String,
    /// Rank in the latest sync; `None`: it left the list.
    pub rank: Option<u16>,
    /// Rank in the previous sync; `None`: it was not there (or there was no previous sync,
    /// see [`ListChanges::first_sync`]).
    pub previous_rank: Option<u16>,
}

impl Change {
    pub fn movement(&self) -> Movement {
        match (self.rank, self.previous_rank) {
            (Some(now), before) => Movement::since(now, before),
            (None, Some(_)) => Movement::Left,
            // In neither list: `changes` never builds one; nothing moved.
            (None, None) => Movement::Same,
        }
    }
}

/// The latest lists against the previous sync's: every current item in rank order, then
/// the items that left, in their previous rank order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ListChanges {
    /// There is no previous sync to compare with: movement is unknown, not "all new", so the
    /// UI shows none.
    pub first_sync: bool,
    pub artists: Vec<Change>,
    pub tracks: Vec<Change>,
}

/// One item's rank across the snapshots of a [`RankHistory`]; `None` where it was not in
/// that snapshot's list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankSeries {
    pub id: String,
    pub name: String,
    pub points: Vec<Option<u16>>,
}

/// Rank over time for the latest sync's top items: `synced_at[i]` (RFC 3339, oldest first)
/// is the time of every series' `points[i]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RankHistory {
    pub synced_at: Vec<String>,
    pub artists: Vec<RankSeries>,
    pub tracks: Vec<RankSeries>,
}

/// What the history panel shows for one time range. With no sync yet: empty lists and
/// `changes.first_sync`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HistoryView {
    /// The newest sync shown (its charts' URLs name it); `None` before any sync.
    pub sync_id: Option<i64>,
    /// The latest sync against the one before.
    pub changes: ListChanges,
    pub history: RankHistory,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(rank: Option<u16>, previous_rank: Option<u16>) -> Change {
        Change {
            id: "x".into(),
            name: "X".into(),
            rank,
            previous_rank,
        }
    }

    #[test]
    fn movement_counts_places_up_and_down() {
        assert_eq!(change(Some(2), Some(5)).movement(), Movement::Up(3));
        assert_eq!(change(Some(5), Some(2)).movement(), Movement::Down(3));
        assert_eq!(change(Some(4), Some(4)).movement(), Movement::Same);
        assert_eq!(change(Some(1), None).movement(), Movement::New);
        assert_eq!(change(None, Some(7)).movement(), Movement::Left);
    }

    #[test]
    fn movement_serializes_with_its_places() {
        assert_eq!(
            serde_json::to_value(Movement::Up(3)).unwrap(),
            serde_json::json!({"kind": "up", "places": 3})
        );
        assert_eq!(
            serde_json::to_value(Movement::New).unwrap(),
            serde_json::json!({"kind": "new"})
        );
    }
}
