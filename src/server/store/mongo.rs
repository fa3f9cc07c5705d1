//! MongoDB: the sync history (`user_syncs` and the append-only snapshots, issue #4).

use super::StoreError;
use crate::server::config::expose;
use crate::server::retry::with_backoff;
use mongodb::bson::doc;
use mongodb::options::ClientOptions;
use secrecy::SecretString;
use std::time::Duration;

#[derive(Clone)]
pub struct Mongo {
    pub client: mongodb::Client,
    pub db: mongodb::Database,
}

impl Mongo {
    /// Build the client (the driver connects lazily and reconnects by itself) and wait,
    /// within `budget`, for the server to answer a ping. A server that stays silent is
    /// logged and reported down by `/readyz`; start-up goes on.
    pub async fn connect(
        url: &SecretString,
        database: &str,
        budget: Duration,
    ) -> Result<Self, StoreError> {
        let mut options = ClientOptions::parse(expose(url))
            .await
            .map_err(|e| StoreError::MongoClient(e.kind.to_string()))?;
        options.app_name = Some("personalify".into());
        // Fail an operation within seconds when the server is gone, instead of the 30 s default.
        options.server_selection_timeout = Some(Duration::from_secs(2));
        options.connect_timeout = Some(Duration::from_secs(2));
        let client = mongodb::Client::with_options(options)
            .map_err(|e| StoreError::MongoClient(e.kind.to_string()))?;
        let mongo = Mongo {
            db: client.database(database),
            client,
        };
        match with_backoff("mongodb", budget, || mongo.ping()).await {
            Ok(()) => tracing::info!(database, "mongodb ready"),
            Err(err) => tracing::warn!(error = %err, "mongodb not reachable; starting without it"),
        }
        Ok(mongo)
    }

    pub async fn ping(&self) -> Result<(), String> {
        self.db
            .run_command(doc! { "ping": 1 })
            .await
            .map(|_| ())
            .map_err(|e| e.kind.to_string())
    }
}
