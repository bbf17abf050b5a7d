//! The read models: office pipelines and funnels, the touch index, the ownership-conflict audit and
//! plan compliance. Each is a [`crate::ReadModel`]; reports over them are plain functions.

mod conflicts;
mod lead_index;
mod pipeline;
mod plans;
mod touches;

pub use conflicts::*;
pub use lead_index::*;
pub use pipeline::*;
pub use plans::*;
pub use touches::*;

/// Median and 90th percentile of a list of durations in seconds in ascending order, as days: two
/// lookups.
pub(crate) fn percentiles_days_sorted(s: &[i64]) -> (Option<f64>, Option<f64>) {
    if s.is_empty() {
        return (None, None);
    }
    let pick = |q: f64| {
        // Nearest-rank percentile.
        let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
        s[rank - 1] as f64 / 86_400.0
    };
    (Some(pick(0.5)), Some(pick(0.9)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn percentiles_use_nearest_rank() {
        let day = 86_400;
        let (m, p90) = super::percentiles_days_sorted(&[day, 2 * day, 3 * day, 4 * day, 10 * day]);
        assert_eq!((m, p90), (Some(3.0), Some(10.0)));
        assert_eq!(super::percentiles_days_sorted(&[]), (None, None));
    }
}
