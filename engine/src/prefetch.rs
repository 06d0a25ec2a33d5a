//! Asking for memory before it is read (software prefetch), a whole item at a time.
//!
//! A prefetch fetches one cache line (64 bytes), so an item that straddles two lines, a run of
//! postings or a struct of several lines needs one per line: a read of a part left out would
//! still wait for memory. None of these reads memory or can fault: they are hints.

use prefetch_index::prefetch_index;

const LINE: usize = 64;

/// Most lines asked for at once for one slice: a longer slice is read in order, which the
/// hardware prefetcher follows by itself.
const MAX_LINES: usize = 8;

/// Asks for the line holding `value` (a field: a struct read in several places is asked for
/// field by field).
pub fn at<T>(value: &T) {
    prefetch_index(std::slice::from_ref(value), 0);
}

/// Asks for every line of `items` (the first [`MAX_LINES`] of a long slice).
pub fn slice<T>(items: &[T]) {
    let Some(last) = items.len().checked_sub(1) else {
        return;
    };
    let size = size_of::<T>().max(1);
    let start = items.as_ptr() as usize;
    let mut at = 0;
    for _ in 0..MAX_LINES {
        prefetch_index(items, at);
        // The first item that starts in the next line.
        let next_line = ((start + at * size) / LINE + 1) * LINE;
        at = (next_line - start).div_ceil(size);
        if at > last {
            // The end of the last item, which may lie in the line after its start.
            item(items, last);
            return;
        }
    }
}

/// Asks for the whole of item `at` of `items` (which may straddle two lines).
pub fn item<T>(items: &[T], at: usize) {
    prefetch_index(items, at);
    let size = size_of::<T>().max(1);
    let start = items.as_ptr() as usize + at * size;
    if start / LINE != (start + size - 1) / LINE {
        // `prefetch_index` only computes the address, so past the end is harmless.
        prefetch_index(items, at + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetching_never_reads_or_faults() {
        let empty: [u64; 0] = [];
        slice(&empty);
        let values: Vec<[u8; 40]> = vec![[0; 40]; 100];
        slice(&values);
        slice(&values[99..]);
        for at in 0..values.len() {
            item(&values, at);
        }
        at(&values[3]);
    }
}
