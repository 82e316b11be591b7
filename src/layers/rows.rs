//! Where the rows of a training forward sit in the whole batch: the places Dropout draws their
//! masks at, so that a process holding some of the batch's rows draws what one process would.

/// The places in the whole batch of the rows a forward holds.
///
/// `From(f)`: the rows are rows `f, f+1, …` of the batch (a whole batch is `From(0)`; a
/// contiguous share of it starts further on). `At(places)`: row `i` is row `places[i]` of the
/// batch (a process holding only some rows of a dataset, scattered over the batch by the
/// shuffle; see `dist`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rows<'a> {
    /// Consecutive rows from this place on.
    From(usize),
    /// Each row's place, in the order of the rows.
    At(&'a [usize]),
}

impl Rows<'_> {
    /// The runs of consecutive places of `count` rows of `per_row` values each, as
    /// `(first value's place, values)`: value `j` of the batch is at place `j`, so row `r` at place
    /// `p` covers values `p·per_row .. (p+1)·per_row`.
    pub fn runs(&self, count: usize, per_row: usize) -> Vec<(usize, usize)> {
        match *self {
            Rows::From(f) => vec![(f * per_row, count * per_row)],
            Rows::At(places) => {
                assert_eq!(places.len(), count, "one place per row");
                let mut runs: Vec<(usize, usize)> = Vec::new();
                for &p in places {
                    match runs.last_mut() {
                        Some((start, len)) if *start + *len == p * per_row => *len += per_row,
                        _ => runs.push((p * per_row, per_row)),
                    }
                }
                runs
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_join_consecutive_places() {
        assert_eq!(Rows::From(2).runs(3, 4), [(8, 12)]);
        assert_eq!(Rows::At(&[1, 2, 5]).runs(3, 4), [(4, 8), (20, 4)]);
        assert_eq!(Rows::At(&[]).runs(0, 4), []);
    }
}
