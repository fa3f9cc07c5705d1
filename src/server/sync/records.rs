//! The sync's PostgreSQL side: batched writes (a handful of statements per sync, whatever
//! the number of rows, via UNNEST) and the read that rebuilds a dashboard payload.

use crate::domain::names;
use crate::domain::{genre_shares, ArtistRef, TimeRange, TopArtist, TopPayload, TopTrack};
use crate::server::spotify::models::{Artist, Image, Track};
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::PgConnection;
use std::collections::HashMap;

/// One range's lists as Spotify returned them.
pub struct Fetched {
    pub range: TimeRange,
    pub artists: Vec<Artist>,
    pub tracks: Vec<Track>,
}

impl Fetched {
    /// One range's lists as the app keeps them, checked at the edge: an artist or track
    /// whose id has not Spotify's shape is dropped (nothing could link to it, and its id
    /// would be a key), a credit likewise; names are bounded (`domain::names`).
    pub fn checked(range: TimeRange, artists: Vec<Artist>, tracks: Vec<Track>) -> Self {
        let artists = artists
            .into_iter()
            .filter(|a| names::is_spotify_id(&a.id))
            .map(|mut a| {
                a.name = names::bounded_name(a.name);
                a.genres = a.genres.map(|g| {
                    g.into_iter()
                        .map(names::bounded_name)
                        .filter(|g| !g.is_empty())
                        .collect()
                });
                a
            })
            .collect();
        let tracks = tracks
            .into_iter()
            .filter(|t| names::is_spotify_id(&t.id))
            .map(|mut t| {
                t.name = names::bounded_name(t.name);
                t.artists = std::mem::take(&mut t.artists)
                    .into_iter()
                    .filter(|a| names::is_spotify_id(&a.id))
                    .map(|mut a| {
                        a.name = names::bounded_name(a.name);
                        a
                    })
                    .collect();
                t.album = t
                    .album
                    .filter(|a| names::is_spotify_id(&a.id))
                    .map(|mut a| {
                        a.name = names::bounded_name(a.name);
                        a
                    });
                t
            })
            .collect();
        Fetched {
            range,
            artists,
            tracks,
        }
    }
}

pub fn format_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The image closest to 320 px wide: sharp in a list, light on a phone.
fn pick_image(images: &[Image]) -> Option<String> {
    images
        .iter()
        .min_by_key(|i| i.width.map_or(u32::MAX, |w| w.abs_diff(320)))
        .map(|i| i.url.clone())
}

/// The dashboard payload for one fetched range. Genres are sorted so the payload is the
/// same whether built here or read back from PostgreSQL.
pub fn payload(spotify_id: &str, sync_id: i64, synced_at: &str, fetched: &Fetched) -> TopPayload {
    let artists: Vec<TopArtist> = fetched
        .artists
        .iter()
        .enumerate()
        .map(|(i, a)| TopArtist {
            rank: i as u16 + 1,
            id: a.id.clone(),
            name: a.name.clone(),
            genres: a.genres.clone().map(|mut g| {
                g.sort();
                g.dedup();
                g
            }),
            image_url: pick_image(&a.images),
            popularity: a.popularity,
            previous_rank: None,
        })
        .collect();
    let tracks = fetched
        .tracks
        .iter()
        .enumerate()
        .map(|(i, t)| TopTrack {
            rank: i as u16 + 1,
            id: t.id.clone(),
            name: t.name.clone(),
            artists: t
                .artists
                .iter()
                .map(|a| ArtistRef {
                    id: a.id.clone(),
                    name: a.name.clone(),
                })
                .collect(),
            album: t.album.as_ref().map(|a| a.name.clone()),
            image_url: t.album.as_ref().and_then(|a| pick_image(&a.images)),
            duration_ms: t.duration_ms,
            previous_rank: None,
        })
        .collect();
    TopPayload {
        spotify_id: spotify_id.to_string(),
        time_range: fetched.range,
        sync_id,
        synced_at: synced_at.to_string(),
        previous_sync_id: None,
        genres: genre_shares(&artists),
        artists,
        tracks,
    }
}

/// Write one sync's catalogue rows, the user's lists and the finished payloads, and stamp
/// the payloads with each item's movement since the previous sync. Runs inside the
/// caller's transaction; `round_trips` counts the statements sent (for the benchmark).
pub async fn write_lists(
    conn: &mut PgConnection,
    spotify_id: &str,
    run_id: i64,
    synced_at: DateTime<Utc>,
    payloads: &mut [TopPayload],
    fetched: &[Fetched],
    round_trips: &mut u32,
) -> Result<(), sqlx::Error> {
    // Catalogue: each artist and track once, whichever ranges it appears in.
    let mut artists: HashMap<&str, &Artist> = HashMap::new();
    let mut tracks: HashMap<&str, &Track> = HashMap::new();
    for f in fetched {
        artists.extend(f.artists.iter().map(|a| (a.id.as_str(), a)));
        tracks.extend(f.tracks.iter().map(|t| (t.id.as_str(), t)));
    }
    let mut artists: Vec<&Artist> = artists.into_values().collect();
    artists.sort_by(|a, b| a.id.cmp(&b.id)); // a stable lock order between concurrent syncs
    let mut tracks: Vec<&Track> = tracks.into_values().collect();
    tracks.sort_by(|a, b| a.id.cmp(&b.id));

    // Rows change only when Spotify's data did (IS DISTINCT FROM), so a repeated sync
    // leaves the catalogue untouched.
    sqlx::query(
        "INSERT INTO artists (id, name, popularity, followers, image_url, genres_known)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::int4[], $4::int8[], $5::text[], $6::bool[])
         ON CONFLICT (id) DO UPDATE SET
           name = EXCLUDED.name, popularity = EXCLUDED.popularity, followers = EXCLUDED.followers,
           image_url = EXCLUDED.image_url, genres_known = EXCLUDED.genres_known, updated_at = now()
         WHERE (artists.name, artists.popularity, artists.followers, artists.image_url, artists.genres_known)
               IS DISTINCT FROM
               (EXCLUDED.name, EXCLUDED.popularity, EXCLUDED.followers, EXCLUDED.image_url, EXCLUDED.genres_known)",
    )
    .bind(artists.iter().map(|a| a.id.clone()).collect::<Vec<_>>())
    .bind(artists.iter().map(|a| a.name.clone()).collect::<Vec<_>>())
    .bind(artists.iter().map(|a| a.popularity.map(|p| p.min(100) as i32)).collect::<Vec<_>>())
    .bind(artists.iter().map(|a| a.followers.as_ref().and_then(|f| f.total).map(|t| t.min(i64::MAX as u64) as i64)).collect::<Vec<_>>())
    .bind(artists.iter().map(|a| pick_image(&a.images)).collect::<Vec<_>>())
    .bind(artists.iter().map(|a| a.genres.is_some()).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    *round_trips += 1;

    // Genres: what Spotify says now. Unknown genres (absent field) remove old ones too, so
    // the record matches the payload built from it.
    let (genre_artists, genre_names): (Vec<String>, Vec<String>) = artists
        .iter()
        .flat_map(|a| {
            let mut genres = a.genres.clone().unwrap_or_default();
            genres.sort();
            genres.dedup();
            genres.into_iter().map(move |g| (a.id.clone(), g))
        })
        .filter(|(_, g)| !g.is_empty())
        .unzip();
    sqlx::query(
        "DELETE FROM artist_genres g WHERE g.artist_id = ANY($1)
           AND (g.artist_id, g.genre) NOT IN (SELECT * FROM UNNEST($2::text[], $3::text[]))",
    )
    .bind(artists.iter().map(|a| a.id.clone()).collect::<Vec<_>>())
    .bind(&genre_artists)
    .bind(&genre_names)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO artist_genres (artist_id, genre)
         SELECT * FROM UNNEST($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
    )
    .bind(&genre_artists)
    .bind(&genre_names)
    .execute(&mut *conn)
    .await?;
    *round_trips += 2;

    sqlx::query(
        "INSERT INTO tracks (id, name, popularity, preview_url, album_id, album_name, album_image_url, duration_ms)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::int4[], $4::text[], $5::text[], $6::text[], $7::text[], $8::int4[])
         ON CONFLICT (id) DO UPDATE SET
           name = EXCLUDED.name, popularity = EXCLUDED.popularity, preview_url = EXCLUDED.preview_url,
           album_id = EXCLUDED.album_id, album_name = EXCLUDED.album_name,
           album_image_url = EXCLUDED.album_image_url, duration_ms = EXCLUDED.duration_ms, updated_at = now()
         WHERE (tracks.name, tracks.popularity, tracks.preview_url, tracks.album_id, tracks.album_name,
                tracks.album_image_url, tracks.duration_ms)
               IS DISTINCT FROM
               (EXCLUDED.name, EXCLUDED.popularity, EXCLUDED.preview_url, EXCLUDED.album_id,
                EXCLUDED.album_name, EXCLUDED.album_image_url, EXCLUDED.duration_ms)",
    )
    .bind(tracks.iter().map(|t| t.id.clone()).collect::<Vec<_>>())
    .bind(tracks.iter().map(|t| t.name.clone()).collect::<Vec<_>>())
    .bind(tracks.iter().map(|t| t.popularity.map(|p| p.min(100) as i32)).collect::<Vec<_>>())
    .bind(tracks.iter().map(|t| t.preview_url.clone()).collect::<Vec<_>>())
    .bind(tracks.iter().map(|t| t.album.as_ref().map(|a| a.id.clone())).collect::<Vec<_>>())
    .bind(tracks.iter().map(|t| t.album.as_ref().map(|a| a.name.clone())).collect::<Vec<_>>())
    .bind(tracks.iter().map(|t| t.album.as_ref().and_then(|a| pick_image(&a.images))).collect::<Vec<_>>())
    .bind(tracks.iter().map(|t| t.duration_ms.map(|d| d.min(i32::MAX as u64) as i32)).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    *round_trips += 1;

    let mut credit_track = Vec::new();
    let mut credit_position = Vec::new();
    let mut credit_artist = Vec::new();
    let mut credit_name = Vec::new();
    for t in &tracks {
        for (i, a) in t.artists.iter().enumerate() {
            credit_track.push(t.id.clone());
            credit_position.push(i as i16);
            credit_artist.push(a.id.clone());
            credit_name.push(a.name.clone());
        }
    }
    sqlx::query(
        "DELETE FROM track_artists ta WHERE ta.track_id = ANY($1)
           AND (ta.track_id, ta.position) NOT IN (SELECT * FROM UNNEST($2::text[], $3::int2[]))",
    )
    .bind(tracks.iter().map(|t| t.id.clone()).collect::<Vec<_>>())
    .bind(&credit_track)
    .bind(&credit_position)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO track_artists (track_id, position, artist_id, artist_name)
         SELECT * FROM UNNEST($1::text[], $2::int2[], $3::text[], $4::text[])
         ON CONFLICT (track_id, position) DO UPDATE SET artist_id = EXCLUDED.artist_id, artist_name = EXCLUDED.artist_name
         WHERE (track_artists.artist_id, track_artists.artist_name) IS DISTINCT FROM (EXCLUDED.artist_id, EXCLUDED.artist_name)",
    )
    .bind(&credit_track)
    .bind(&credit_position)
    .bind(&credit_artist)
    .bind(&credit_name)
    .execute(&mut *conn)
    .await?;
    *round_trips += 2;

    // The user's lists: replaced whole, all three ranges in one statement per table. The
    // rows replaced are the previous sync's lists: their ranks are each item's movement.
    let mut previous: HashMap<TimeRange, Previous> = HashMap::new();
    for (table, column) in [("user_artists", "artist_id"), ("user_tracks", "track_id")] {
        let replaced: Vec<(String, i16, String, i64)> = sqlx::query_as(&format!(
            "DELETE FROM {table} WHERE spotify_id = $1 RETURNING time_range, rank, {column}, sync_run_id"
        ))
        .bind(spotify_id)
        .fetch_all(&mut *conn)
        .await?;
        *round_trips += 1;
        for (range, rank, id, sync_run_id) in replaced {
            let (Ok(range), Ok(rank)) = (range.parse::<TimeRange>(), u16::try_from(rank)) else {
                continue;
            };
            let entry = previous.entry(range).or_default();
            entry.sync_id = Some(sync_run_id);
            let ranks = if table == "user_artists" {
                &mut entry.artists
            } else {
                &mut entry.tracks
            };
            ranks.insert(id, rank);
        }
    }
    for p in payloads.iter_mut() {
        let before = previous.remove(&p.time_range).unwrap_or_default();
        p.compare_with(before.sync_id, &before.artists, &before.tracks);
    }

    let mut ranges_a = Vec::new();
    let mut ranks_a = Vec::new();
    let mut ids_a = Vec::new();
    let mut ranges_t = Vec::new();
    let mut ranks_t = Vec::new();
    let mut ids_t = Vec::new();
    for p in payloads.iter() {
        for a in &p.artists {
            ranges_a.push(p.time_range.as_str().to_string());
            ranks_a.push(a.rank as i16);
            ids_a.push(a.id.clone());
        }
        for t in &p.tracks {
            ranges_t.push(p.time_range.as_str().to_string());
            ranks_t.push(t.rank as i16);
            ids_t.push(t.id.clone());
        }
    }
    for (table, column, ranges, ranks, ids) in [
        ("user_artists", "artist_id", &ranges_a, &ranks_a, &ids_a),
        ("user_tracks", "track_id", &ranges_t, &ranks_t, &ids_t),
    ] {
        sqlx::query(&format!(
            "INSERT INTO {table} (spotify_id, time_range, rank, {column}, sync_run_id, synced_at)
             SELECT $1, r, k, i, $2, $3 FROM UNNEST($4::text[], $5::int2[], $6::text[]) AS u(r, k, i)"
        ))
        .bind(spotify_id)
        .bind(run_id)
        .bind(synced_at)
        .bind(ranges)
        .bind(ranks)
        .bind(ids)
        .execute(&mut *conn)
        .await?;
        *round_trips += 1;
    }

    // The finished payloads, movement included: what the dashboard reads on a cache miss.
    let mut json = Vec::with_capacity(payloads.len());
    for p in payloads.iter() {
        json.push(serde_json::to_string(p).map_err(|e| sqlx::Error::Encode(Box::new(e)))?);
    }
    sqlx::query(
        "INSERT INTO top_payloads (spotify_id, time_range, sync_run_id, payload)
         SELECT $1, r, $2, p::jsonb FROM UNNEST($3::text[], $4::text[]) AS u(r, p)
         ON CONFLICT (spotify_id, time_range) DO UPDATE
           SET sync_run_id = EXCLUDED.sync_run_id, payload = EXCLUDED.payload",
    )
    .bind(spotify_id)
    .bind(run_id)
    .bind(
        payloads
            .iter()
            .map(|p| p.time_range.as_str().to_string())
            .collect::<Vec<_>>(),
    )
    .bind(json)
    .execute(&mut *conn)
    .await?;
    *round_trips += 1;
    Ok(())
}

/// One range's lists as the sync about to replace them left them.
#[derive(Default)]
struct Previous {
    sync_id: Option<i64>,
    artists: HashMap<String, u16>,
    tracks: HashMap<String, u16>,
}

/// The stored payload of a range, as JSON text (the exact bytes the cache holds); `None`
/// if the user never synced it since payloads were stored.
pub async fn stored_payload(
    conn: &mut PgConnection,
    spotify_id: &str,
    range: TimeRange,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT payload::text FROM top_payloads WHERE spotify_id = $1 AND time_range = $2",
    )
    .bind(spotify_id)
    .bind(range.as_str())
    .fetch_optional(conn)
    .await
}

type ArtistRow = (
    i16,
    String,
    String,
    Option<i32>,
    Option<String>,
    bool,
    Vec<String>,
    i64,
    DateTime<Utc>,
);
type TrackRow = (
    i16,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<i32>,
    Vec<String>,
    Vec<String>,
);

/// Rebuild a range's payload from the lists in the record (without movement, which only
/// the sync knows); `None` if the user never synced it. The read path falls back to it for
/// lists synced before payloads were stored.
pub async fn read_payload(
    conn: &mut PgConnection,
    spotify_id: &str,
    range: TimeRange,
) -> Result<Option<TopPayload>, sqlx::Error> {
    let artist_rows: Vec<ArtistRow> = sqlx::query_as(
        "SELECT ua.rank, a.id, a.name, a.popularity, a.image_url, a.genres_known,
                COALESCE(array_agg(g.genre ORDER BY g.genre) FILTER (WHERE g.genre IS NOT NULL), '{}'),
                ua.sync_run_id, ua.synced_at
           FROM user_artists ua
           JOIN artists a ON a.id = ua.artist_id
           LEFT JOIN artist_genres g ON g.artist_id = a.id
          WHERE ua.spotify_id = $1 AND ua.time_range = $2
          GROUP BY ua.rank, a.id, ua.sync_run_id, ua.synced_at
          ORDER BY ua.rank",
    )
    .bind(spotify_id)
    .bind(range.as_str())
    .fetch_all(&mut *conn)
    .await?;
    let Some(first) = artist_rows.first() else {
        return Ok(None);
    };
    let (sync_id, synced_at) = (first.7, first.8);
    let artists: Vec<TopArtist> = artist_rows
        .into_iter()
        .map(
            |(rank, id, name, popularity, image_url, genres_known, genres, _, _)| TopArtist {
                rank: rank as u16,
                id,
                name,
                genres: genres_known.then_some(genres),
                image_url,
                popularity: popularity.map(|p| p as u32),
                previous_rank: None,
            },
        )
        .collect();
    let track_rows: Vec<TrackRow> = sqlx::query_as(
        "SELECT ut.rank, t.id, t.name, t.album_name, t.album_image_url, t.duration_ms,
                COALESCE(array_agg(ta.artist_id ORDER BY ta.position) FILTER (WHERE ta.artist_id IS NOT NULL), '{}'),
                COALESCE(array_agg(ta.artist_name ORDER BY ta.position) FILTER (WHERE ta.artist_id IS NOT NULL), '{}')
           FROM user_tracks ut
           JOIN tracks t ON t.id = ut.track_id
           LEFT JOIN track_artists ta ON ta.track_id = t.id
          WHERE ut.spotify_id = $1 AND ut.time_range = $2
          GROUP BY ut.rank, t.id
          ORDER BY ut.rank",
    )
    .bind(spotify_id)
    .bind(range.as_str())
    .fetch_all(&mut *conn)
    .await?;
    let tracks = track_rows
        .into_iter()
        .map(
            |(rank, id, name, album, image_url, duration_ms, artist_ids, artist_names)| TopTrack {
                rank: rank as u16,
                id,
                name,
                artists: artist_ids
                    .into_iter()
                    .zip(artist_names)
                    .map(|(id, name)| ArtistRef { id, name })
                    .collect(),
                album,
                image_url,
                duration_ms: duration_ms.map(|d| d as u64),
                previous_rank: None,
            },
        )
        .collect();
    Ok(Some(TopPayload {
        spotify_id: spotify_id.to_string(),
        time_range: range,
        sync_id,
        synced_at: format_time(synced_at),
        // The rebuild cannot know what the lists replaced: movement unknown.
        previous_sync_id: None,
        genres: genre_shares(&artists),
        artists,
        tracks,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::spotify::models::{Album, SimplifiedArtist};

    fn artist(id: &str, name: &str) -> Artist {
        Artist {
            id: id.into(),
            name: name.into(),
            genres: Some(vec!["pop\0".into(), "x".repeat(2_000)]),
            popularity: None,
            followers: None,
            images: Vec::new(),
        }
    }

    #[test]
    fn spotify_lists_are_checked_at_the_edge() {
        const ID: &str = "4Z8W4fKeB5YxbusRsdQVPb";
        let long = "y".repeat(1_000_000);
        let track = Track {
            id: ID.into(),
            name: long.clone(),
            artists: vec![
                SimplifiedArtist {
                    id: ID.into(),
                    name: "A\0B".into(),
                },
                SimplifiedArtist {
                    id: "not an id".into(),
                    name: "Gone".into(),
                },
            ],
            album: Some(Album {
                id: ID.into(),
                name: long.clone(),
                album_type: None,
                release_date: None,
                images: Vec::new(),
            }),
            duration_ms: None,
            explicit: None,
            popularity: None,
            preview_url: None,
        };
        let mut odd = track.clone();
        odd.id = "x".repeat(5_000);
        let fetched = Fetched::checked(
            TimeRange::ShortTerm,
            vec![artist(ID, &long), artist("../x", "Bad id")],
            vec![track, odd],
        );
        assert_eq!(
            fetched.artists.len(),
            1,
            "an id of another shape is dropped"
        );
        assert_eq!(fetched.artists[0].name.chars().count(), 512);
        let genres = fetched.artists[0].genres.clone().unwrap();
        assert_eq!(genres[0], "pop");
        assert_eq!(genres[1].chars().count(), 512);
        assert_eq!(fetched.tracks.len(), 1);
        let t = &fetched.tracks[0];
        assert!(t.name.ends_with('…') && t.name.chars().count() == 512);
        assert_eq!(t.artists.len(), 1);
        assert_eq!(t.artists[0].name, "AB");
        assert_eq!(t.album.as_ref().unwrap().name.chars().count(), 512);
    }
}
