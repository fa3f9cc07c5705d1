//! The Distributed query page: the cross-node queries the app runs for the signed-in
//! person, their results, and their plans with the SQL sent to the analytics node.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistributedView {
    /// The foreign server's options on `main` (`host`, `port`, `dbname`, `fetch_size`, …);
    /// the user mapping's password is never among them.
    pub server: Vec<(String, String)>,
    /// The foreign tables in schema `analytics`, each with its columns (`name type`).
    pub tables: Vec<ForeignTable>,
    /// Each partition of those tables and the analytics node it is on.
    pub placements: Vec<(i16, String)>,
    /// The partition your rows are in.
    pub your_partition: Option<i16>,
    pub queries: Vec<QueryRun>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignTable {
    pub name: String,
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryRun {
    pub name: String,
    pub title: String,
    pub about: String,
    pub sql: String,
    /// What each `$n` stands for, in order.
    pub params: Vec<String>,
    pub columns: Vec<String>,
    /// The first rows of the result, as text.
    pub rows: Vec<Vec<String>>,
    /// Rows in the whole result.
    pub row_count: usize,
    pub ms: Option<f64>,
    /// The query could not run (the analytics node down): why, in words.
    pub error: Option<String>,
    /// `EXPLAIN (VERBOSE)`, a line each.
    pub plan: Vec<String>,
    /// Where its remote parts ran: per node, the partitions the plan scans there
    /// (`analytics-2: plays_by_track_p3, plays_by_artist_p3`).
    pub ran_on: Vec<String>,
    /// A kept result (the instance-wide query): how long ago it was counted.
    #[serde(default)]
    pub counted_secs_ago: Option<u64>,
}

impl QueryRun {
    /// Per column, whether it holds numbers (each shown cell one, or NULL): those are
    /// aligned right in the result's table, words left.
    pub fn numeric_columns(&self) -> Vec<bool> {
        (0..self.columns.len())
            .map(|i| {
                self.rows.iter().all(|row| {
                    row.get(i)
                        .is_none_or(|cell| cell == "NULL" || cell.parse::<f64>().is_ok())
                })
            })
            .collect()
    }

    /// The SQL `main` sends to the analytics node (the plan's `Remote SQL:` lines).
    pub fn remote_sql(&self) -> Vec<&str> {
        self.plan
            .iter()
            .filter_map(|l| l.trim_start().strip_prefix("Remote SQL: "))
            .collect()
    }
}

/// The partitions a plan scans (`plays_p3`, …: the foreign tables in schema `analytics`
/// named in it), each once, in order.
pub fn scanned_partitions(plan: &[String]) -> Vec<(String, i16)> {
    let mut out: Vec<(String, i16)> = Vec::new();
    for line in plan {
        let mut rest = line.as_str();
        while let Some(at) = rest.find("analytics.") {
            rest = &rest[at + "analytics.".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let part = name
                .rsplit_once("_p")
                .and_then(|(table, n)| n.parse::<i16>().ok().map(|n| (table.to_string(), n)));
            if let Some((table, n)) = part {
                if !out.iter().any(|(t, p)| *t == table && *p == n) {
                    out.push((table, n));
                }
            }
        }
    }
    out
}

/// [`scanned_partitions`] grouped by the node each partition is placed on.
pub fn ran_on(plan: &[String], placements: &[(i16, String)]) -> Vec<String> {
    let scanned = scanned_partitions(plan);
    let mut nodes: Vec<&str> = placements.iter().map(|(_, n)| n.as_str()).collect();
    nodes.sort();
    nodes.dedup();
    nodes
        .into_iter()
        .filter_map(|node| {
            let here: Vec<String> = scanned
                .iter()
                .filter(|(_, p)| placements.iter().any(|(q, n)| q == p && n == node))
                .map(|(t, p)| format!("{t}_p{p}"))
                .collect();
            (!here.is_empty()).then(|| format!("{node}: {}", here.join(", ")))
        })
        .collect()
}

/// Whether a plan line is one of those to highlight.
pub fn is_remote_line(line: &str) -> bool {
    line.trim_start().starts_with("Remote SQL:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_told_from_words_column_by_column() {
        let row = |cells: [&str; 4]| cells.map(String::from).to_vec();
        let run = QueryRun {
            name: "top_artists".into(),
            title: String::new(),
            about: String::new(),
            sql: String::new(),
            params: Vec::new(),
            columns: ["artist_name", "ms", "plays", "artist_id"]
                .map(String::from)
                .to_vec(),
            rows: vec![
                row(["1999", "12", "3", "NULL"]),
                row(["Alpha", "4.5", "1", "4Z8W4"]),
            ],
            row_count: 2,
            ms: Some(1.0),
            error: None,
            plan: Vec::new(),
            ran_on: Vec::new(),
            counted_secs_ago: None,
        };
        assert_eq!(run.numeric_columns(), vec![false, true, true, false]);
    }

    #[test]
    fn the_partitions_a_plan_scans_are_named_with_their_node() {
        let plan: Vec<String> = [
            "Append",
            "  ->  Async Foreign Scan",
            "        Relations: Aggregate on (analytics.plays_p0 plays)",
            "  ->  Async Foreign Scan",
            "        Relations: Aggregate on (analytics.plays_p1 plays_1)",
            "  ->  Foreign Scan on analytics.plays_by_track_p1 t",
            "        Remote SQL: SELECT spotify_id FROM public.plays_by_track_p1",
        ]
        .map(String::from)
        .to_vec();
        let placements = vec![(0, "analytics".to_string()), (1, "analytics-2".to_string())];
        assert_eq!(
            ran_on(&plan, &placements),
            vec![
                "analytics: plays_p0".to_string(),
                "analytics-2: plays_p1, plays_by_track_p1".to_string()
            ]
        );
        assert!(ran_on(&["Seq Scan on public.users u".to_string()], &placements).is_empty());
    }
}
