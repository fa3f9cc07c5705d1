//! The demo users, their tastes, and what Spotify would rank as their top artists and
//! tracks on a given day, plus the plays behind "recently played".
//!
//! score(artist) = taste fit + personal affinity + a range-specific component + drifting
//! noise. The noise is interpolated between values drawn once per period (1 day for
//! short_term, 7 for medium_term, 30 for long_term), so a day later short_term has moved
//! visibly while long_term has barely changed, and no period boundary reshuffles a range
//! all at once.

use super::catalogue::{Catalogue, GENRES};
use super::rng::{hash, tag, unit, SplitMix};
use super::DemoUser;
use crate::domain::TimeRange;
use std::cmp::Ordering;

pub(crate) static DEMO_USERS: [DemoUser; 4] = [
    DemoUser {
        id: "demo-alex",
        display_name: "Alex Rivera",
        tagline: "Indie pop by day, shoegaze after midnight",
    },
    DemoUser {
        id: "demo-sari",
        display_name: "Sari Wulandari",
        tagline: "Dangdut at breakfast, K-pop on the commute, city pop after dark",
    },
    DemoUser {
        id: "demo-kenji",
        display_name: "Kenji Mori",
        tagline: "Jazz records, techno nights, ambient mornings",
    },
    DemoUser {
        id: "demo-amara",
        display_name: "Amara Okafor",
        tagline: "Afrobeats and hip hop, with neo soul on Sundays",
    },
];

/// Per demo user (same order as [`DEMO_USERS`]): liked genres and how much, plus the
/// details `/v1/me` shows.
pub(crate) struct Profile {
    pub likes: &'static [(&'static str, f64)],
    pub country: &'static str,
    pub email: &'static str,
    pub followers: u64,
}

pub(crate) static PROFILES: [Profile; 4] = [
    Profile {
        likes: &[
            ("indie pop", 1.0),
            ("dream pop", 0.9),
            ("shoegaze", 0.8),
            ("indie folk", 0.6),
            ("ambient", 0.3),
        ],
        country: "US",
        email: "alex.rivera@example.com",
        followers: 48,
    },
    Profile {
        likes: &[
            ("dangdut", 1.0),
            ("k-pop", 0.9),
            ("city pop", 0.8),
            ("pop", 0.6),
            ("r&b", 0.4),
        ],
        country: "ID",
        email: "sari.wulandari@example.com",
        followers: 215,
    },
    Profile {
        likes: &[
            ("jazz", 1.0),
            ("techno", 0.9),
            ("ambient", 0.8),
            ("neo soul", 0.6),
            ("house", 0.5),
        ],
        country: "JP",
        email: "kenji.mori@example.com",
        followers: 12,
    },
    Profile {
        likes: &[
            ("afrobeats", 1.0),
            ("hip hop", 0.9),
            ("neo soul", 0.8),
            ("r&b", 0.7),
            ("house", 0.3),
        ],
        country: "NG",
        email: "amara.okafor@example.com",
        followers: 131,
    },
];

/// Listeners beyond the four demo users, for load and soak tests: `demo-crowd-001` to
/// `demo-crowd-200`, each with one of the four tastes and lists of their own.
pub const CROWD: usize = 200;

/// The demo users, then the crowd; a listener's index is their place here.
pub(crate) static LISTENERS: std::sync::LazyLock<Vec<DemoUser>> = std::sync::LazyLock::new(|| {
    let mut all = DEMO_USERS.to_vec();
    for n in 1..=CROWD {
        // Built once per process: leaking them gives the same `&'static str` as the demo
        // users have.
        all.push(DemoUser {
            id: Box::leak(format!("demo-crowd-{n:03}").into_boxed_str()),
            display_name: Box::leak(format!("Crowd Listener {n}").into_boxed_str()),
            tagline: "One of many, for load tests",
        });
    }
    all
});

/// A listener's taste profile: the demo users' own; the crowd borrows theirs in turn.
pub(crate) fn profile(user: usize) -> &'static Profile {
    &PROFILES[user % PROFILES.len()]
}

pub(crate) fn user_index(id: &str) -> Option<usize> {
    LISTENERS.iter().position(|u| u.id == id)
}

/// How one time range weighs its components.
struct RangeModel {
    period_days: i64,
    /// Weight of a per-(user, item, range) component that never moves: what makes the
    /// three ranges different lists rather than shuffles of one list.
    range_weight: f64,
    /// Weight of a rare, large, never-moving boost: the few new discoveries that a recent
    /// window shows and the long view does not.
    discovery_weight: f64,
    /// How far a range's mood may move each liked genre's weight (a share, either way):
    /// lately Alex is deep in shoegaze, over the year indie pop still leads.
    mood_swing: f64,
    /// Weight of the drifting noise.
    drift_weight: f64,
}

fn model(range: TimeRange) -> RangeModel {
    match range {
        TimeRange::ShortTerm => RangeModel {
            period_days: 1,
            range_weight: 1.6,
            discovery_weight: 2.5,
            mood_swing: 0.5,
            drift_weight: 0.25,
        },
        TimeRange::MediumTerm => RangeModel {
            period_days: 7,
            range_weight: 1.2,
            discovery_weight: 1.2,
            mood_swing: 0.3,
            drift_weight: 0.3,
        },
        TimeRange::LongTerm => RangeModel {
            period_days: 30,
            range_weight: 0.8,
            discovery_weight: 0.0,
            mood_swing: 0.0,
            drift_weight: 0.3,
        },
    }
}

/// Noise in [0, 1) that drifts: linear between values drawn at period boundaries.
fn drift(seed: u64, [k0, k1, k2, k3]: [u64; 4], day: i64, period: i64) -> f64 {
    let bucket = day.div_euclid(period);
    let phase = day.rem_euclid(period) as f64 / period as f64;
    let at = |b: i64| unit(hash(seed, &[k0, k1, k2, k3, b as u64]));
    at(bucket) * (1.0 - phase) + at(bucket + 1) * phase
}

/// How many items Spotify reports for this user, range and kind: between 60 and 99.
fn list_total(seed: u64, kind: &str, user: usize, range: TimeRange) -> usize {
    60 + (hash(seed, &[tag(kind), user as u64, tag(range.as_str())]) % 40) as usize
}

/// How much the user likes each genre in this range: their base taste, moved by the
/// range's mood.
fn genre_weights(seed: u64, user: usize, range: TimeRange) -> [f64; GENRES.len()] {
    let swing = model(range).mood_swing;
    let mut weights = [0.0; GENRES.len()];
    for (g, weight) in weights.iter_mut().enumerate() {
        let base = profile(user)
            .likes
            .iter()
            .find(|(name, _)| *name == GENRES[g])
            .map_or(0.0, |(_, w)| *w);
        let mood = unit(hash(
            seed,
            &[tag("mood"), user as u64, tag(range.as_str()), g as u64],
        ));
        *weight = base * (1.0 + swing * (2.0 * mood - 1.0));
    }
    weights
}

fn taste_fit(weights: &[f64; GENRES.len()], genres: &[usize]) -> f64 {
    // The main genre counts fully, the others add a little.
    let main = genres.first().map_or(0.0, |&g| weights[g]);
    let extra = genres.iter().skip(1).map(|&g| weights[g]).sum::<f64>();
    main + 0.35 * extra
}

fn by_score_desc(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    // Ties (practically impossible) fall back to the index, so the order is total.
    order.sort_by(|&a, &b| match scores[b].total_cmp(&scores[a]) {
        Ordering::Equal => a.cmp(&b),
        other => other,
    });
    order
}

fn artist_scores(c: &Catalogue, user: usize, range: TimeRange, day: i64) -> Vec<f64> {
    let m = model(range);
    let (u, r) = (user as u64, tag(range.as_str()));
    let weights = genre_weights(c.seed, user, range);
    c.artists
        .iter()
        .enumerate()
        .map(|(i, artist)| {
            let i = i as u64;
            2.5 * taste_fit(&weights, &artist.genres)
                + 1.0 * unit(hash(c.seed, &[tag("affinity"), u, i]))
                + 0.4 * f64::from(artist.popularity) / 100.0
                + m.range_weight * unit(hash(c.seed, &[tag("range"), u, r, i]))
                + m.discovery_weight * unit(hash(c.seed, &[tag("discovery"), u, r, i])).powi(8)
                + m.drift_weight * drift(c.seed, [tag("drift"), u, r, i], day, m.period_days)
        })
        .collect()
}

/// The user's top artists (catalogue indices, best first), `total` of them.
pub(crate) fn top_artists(c: &Catalogue, user: usize, range: TimeRange, day: i64) -> Vec<usize> {
    let mut order = by_score_desc(&artist_scores(c, user, range, day));
    order.truncate(list_total(c.seed, "artists-total", user, range));
    order
}

/// The user's top tracks (catalogue indices, best first): they follow the top artists, with
/// their own noise, and an artist's second, third... track counts a little less each, so a
/// favourite artist does not fill the whole list.
pub(crate) fn top_tracks(c: &Catalogue, user: usize, range: TimeRange, day: i64) -> Vec<usize> {
    let m = model(range);
    let artist_scores = artist_scores(c, user, range, day);
    let (u, r) = (user as u64, tag(range.as_str()));
    let mut scores = vec![0.0; c.tracks.len()];
    for (i, track) in c.tracks.iter().enumerate() {
        let k = i as u64;
        let featured = track.featured.map_or(0.0, |f| 0.25 * artist_scores[f]);
        scores[i] = artist_scores[track.artist]
            + featured
            + 0.3 * f64::from(track.popularity) / 100.0
            + 0.9 * unit(hash(c.seed, &[tag("track-range"), u, r, k]))
            + m.drift_weight * drift(c.seed, [tag("track-drift"), u, r, k], day, m.period_days);
    }
    for artist in &c.artists {
        let own: Vec<f64> = artist.tracks.iter().map(|&t| scores[t]).collect();
        for (rank, &pos) in by_score_desc(&own).iter().enumerate() {
            scores[artist.tracks[pos]] -= 0.45 * rank as f64;
        }
    }
    let mut order = by_score_desc(&scores);
    order.truncate(list_total(c.seed, "tracks-total", user, range));
    order
}

/// One play: a track and when it was played (Unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Play {
    pub track: usize,
    pub played_at_ms: i64,
}

const DAY_MS: i64 = 86_400_000;

/// What the user played on `day` (days since the epoch), oldest first: 40-60 plays in
/// listening sessions between 07:00 and midnight UTC, drawn mostly from that day's
/// short_term favourites. A function of the day alone, so the history does not change
/// when the clock moves on; only how much of it is visible.
pub(crate) fn plays_on(c: &Catalogue, user: usize, day: i64) -> Vec<Play> {
    let mut rng = SplitMix::new(hash(c.seed, &[tag("plays"), user as u64, day as u64]));
    let favourites = top_tracks(c, user, TimeRange::ShortTerm, day);
    let target = rng.range(40, 60) as usize;
    let day_start = day * DAY_MS;
    let day_end = day_start + DAY_MS;
    let mut at = day_start + 7 * 3_600_000 + rng.below(90 * 60_000) as i64;
    let mut plays = Vec::with_capacity(target);
    while plays.len() < target {
        // Skewed towards the top of the list, with the odd track from elsewhere.
        let track = if rng.chance(0.9) && !favourites.is_empty() {
            let u = rng.below(1_000_000) as f64 / 1_000_000.0;
            favourites[((u * u) * favourites.len() as f64) as usize]
        } else {
            rng.below(c.tracks.len() as u64) as usize
        };
        let duration = i64::from(c.tracks[track].duration_ms);
        if at + duration >= day_end {
            break;
        }
        // Spotify records a play when it ends; played_at has millisecond precision.
        plays.push(Play {
            track,
            played_at_ms: at + duration,
        });
        at += duration + rng.below(20_000) as i64;
        // Between sessions: a break of one to four hours, every dozen plays or so.
        if rng.chance(0.08) {
            at += rng.range(60, 240) as i64 * 60_000;
        }
    }
    plays
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn overlap(a: &[usize], b: &[usize]) -> usize {
        let a: HashSet<_> = a.iter().collect();
        b.iter().filter(|x| a.contains(x)).count()
    }

    #[test]
    fn tastes_show_in_the_top_artists() {
        let c = Catalogue::build(2026);
        let kenji = user_index("demo-kenji").expect("kenji exists");
        let top = top_artists(&c, kenji, TimeRange::MediumTerm, 20_000);
        let liked: HashSet<&str> = PROFILES[kenji].likes.iter().map(|(g, _)| *g).collect();
        let fitting = top[..20]
            .iter()
            .filter(|&&a| liked.contains(GENRES[c.artists[a].genres[0]]))
            .count();
        assert!(
            fitting >= 15,
            "only {fitting} of the top 20 fit Kenji's taste"
        );
    }

    #[test]
    fn ranges_are_different_lists_and_totals_are_realistic() {
        let c = Catalogue::build(2026);
        for user in 0..DEMO_USERS.len() {
            let lists: Vec<Vec<usize>> = TimeRange::ALL
                .iter()
                .map(|&r| top_artists(&c, user, r, 20_000))
                .collect();
            for list in &lists {
                assert!((60..=99).contains(&list.len()));
            }
            assert!(overlap(&lists[0][..20], &lists[2][..20]) < 20);
            assert_ne!(lists[0][..20], lists[1][..20]);
        }
    }

    #[test]
    fn a_day_moves_short_term_and_leaves_long_term_mostly_alone() {
        let c = Catalogue::build(2026);
        for day in [20_000, 20_029, 20_030] {
            let short = |d| top_artists(&c, 0, TimeRange::ShortTerm, d);
            let long = |d| top_artists(&c, 0, TimeRange::LongTerm, d);
            assert_ne!(short(day)[..50], short(day + 1)[..50]);
            assert!(overlap(&long(day)[..20], &long(day + 1)[..20]) >= 18);
        }
    }

    #[test]
    fn plays_are_ordered_within_the_day_and_plausibly_many() {
        let c = Catalogue::build(2026);
        let plays = plays_on(&c, 1, 20_000);
        assert!((30..=60).contains(&plays.len()), "{}", plays.len());
        assert!(plays
            .windows(2)
            .all(|w| w[0].played_at_ms < w[1].played_at_ms));
        let day = 20_000 * DAY_MS..20_001 * DAY_MS;
        assert!(plays.iter().all(|p| day.contains(&p.played_at_ms)));
        assert_eq!(plays, plays_on(&c, 1, 20_000));
    }
}
