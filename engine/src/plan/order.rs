//! Pass 5, ordering: the instance graph (producers and consumers of every instance) and a
//! dependency order, lowest instance index first among the ready ones, so the order follows
//! the file.

use super::Instance;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

/// Producers and consumers of every instance, each list distinct and ascending.
pub(super) fn edges(instances: &[Instance]) -> (Vec<Vec<usize>>, Vec<Vec<usize>>) {
    let producers: Vec<Vec<usize>> = instances
        .iter()
        .map(|inst| inst.inputs.values().flatten().map(|b| b.instance).collect::<BTreeSet<_>>().into_iter().collect())
        .collect();
    let mut consumers = vec![Vec::new(); instances.len()];
    for (i, ps) in producers.iter().enumerate() {
        for &p in ps {
            consumers[p].push(i);
        }
    }
    (producers, consumers)
}

/// Kahn's algorithm; `Err(i)` names an instance on a cycle.
pub(super) fn topological(producers: &[Vec<usize>], consumers: &[Vec<usize>]) -> Result<Vec<usize>, usize> {
    let n = producers.len();
    let mut indeg: Vec<usize> = producers.iter().map(Vec::len).collect();
    let mut heap: BinaryHeap<Reverse<usize>> = (0..n).filter(|&i| indeg[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = heap.pop() {
        order.push(i);
        for &m in &consumers[i] {
            indeg[m] -= 1;
            if indeg[m] == 0 {
                heap.push(Reverse(m));
            }
        }
    }
    if order.len() == n {
        Ok(order)
    } else {
        let placed: BTreeSet<usize> = order.into_iter().collect();
        Err((0..n).find(|i| !placed.contains(i)).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_lowest_index_first_among_ready() {
        // 0 → 2, 1 → 2, 3 (free), 2 → 4: ready sets {0,1,3}, then 2, then 4.
        let producers = vec![vec![], vec![], vec![0, 1], vec![], vec![2]];
        let mut consumers = vec![vec![]; 5];
        for (i, ps) in producers.iter().enumerate() {
            for &p in ps {
                consumers[p].push(i);
            }
        }
        assert_eq!(topological(&producers, &consumers), Ok(vec![0, 1, 2, 3, 4]));
    }

    #[test]
    fn a_cycle_names_a_member() {
        let producers = vec![vec![], vec![2], vec![1]];
        let consumers = vec![vec![], vec![2], vec![1]];
        assert_eq!(topological(&producers, &consumers), Err(1));
    }
}
