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
}

impl QueryRun {
    /// The SQL `main` sends to the analytics node (the plan's `Remote SQL:` lines).
    pub fn remote_sql(&self) -> Vec<&str> {
        self.plan
            .iter()
            .filter_map(|l| l.trim_start().strip_prefix("Remote SQL: "))
            .collect()
    }
}

/// Whether a plan line is one of those to highlight.
pub fn is_remote_line(line: &str) -> bool {
    line.trim_start().starts_with("Remote SQL:")
}
