//! The containers a pickle builds and which contains which, checked once the whole opcode
//! stream has been walked.
//!
//! Why at the end: through the memo a container can be filled *after* it was put inside
//! another (`L0.extend([memo[1]])`, then `memo[1].extend([memo[2]])`, …), so depth or size
//! known when an item is added is stale. A 2 MB pickle nesting 100,000 lists that way passed a
//! per-step depth check and overflowed serde-pickle's recursion (issue 9). Here every "is put
//! inside" is an edge, and depth and expanded size are computed over the final graph, which
//! is what serde ends up walking (a container shared through the memo or `DUP` is walked
//! once per reference).

use crate::error::BoxError;

/// What the scanner knows of a stack item: a scalar, or container number `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Node {
    Leaf,
    Container(u32),
}

/// Containers (by number) with how many scalars each holds, and container-in-container edges.
/// Memory: 8 bytes per container and per edge while scanning, about twice that while
/// checking; both counts are bounded by the input length (each needs an opcode).
/// Container numbers stay below 2^31.
const MAX_CONTAINERS: u32 = 1 << 31;

#[derive(Default)]
pub(super) struct Graph {
    leaves: Vec<u64>,
    edges: Vec<(u32, u32)>,
}

impl Graph {
    /// A new, empty container.
    pub(super) fn container(&mut self) -> Result<Node, BoxError> {
        let id = u32::try_from(self.leaves.len())
            .ok()
            .filter(|&id| id < MAX_CONTAINERS)
            .ok_or("pickle has too many containers")?;
        self.leaves.push(0);
        Ok(Node::Container(id))
    }

    /// Records that `child` is now inside `container`.
    pub(super) fn add(&mut self, container: u32, child: Node) {
        match child {
            Node::Leaf => {
                let leaves = &mut self.leaves[container as usize];
                *leaves = leaves.saturating_add(1);
            }
            Node::Container(child) => self.edges.push((container, child)),
        }
    }

    /// Refuses a graph with a container nested deeper than `max_depth`, a cycle, or more than
    /// `max_values` values once every memo reference is expanded (over everything built,
    /// kept or discarded: the reader builds it all).
    pub(super) fn check(&self, max_depth: u32, max_values: u64) -> Result<(), BoxError> {
        let n = self.leaves.len();
        // Children of each container, contiguous (compressed sparse rows).
        let mut start = vec![0u32; n + 1];
        for &(parent, _) in &self.edges {
            start[parent as usize + 1] += 1;
        }
        for i in 0..n {
            start[i + 1] += start[i];
        }
        let mut fill = start.clone();
        let mut children = vec![0u32; self.edges.len()];
        let mut has_parent = vec![false; n];
        for &(parent, child) in &self.edges {
            children[fill[parent as usize] as usize] = child;
            fill[parent as usize] += 1;
            has_parent[child as usize] = true;
        }
        drop(fill);
        let kids = |node: usize| &children[start[node] as usize..start[node + 1] as usize];

        const NEW: u8 = 0;
        const OPEN: u8 = 1;
        const DONE: u8 = 2;
        let mut state = vec![NEW; n];
        let mut depth = vec![0u32; n];
        let mut size = vec![0u64; n];
        let too_deep = || format!("pickle nests deeper than {max_depth} levels").into();
        let too_big = || {
            format!("pickle expands to more than {max_values} values through memo references")
                .into()
        };
        // Depth-first, iteratively (the path lives on the heap, at most one entry per
        // container).
        let mut path: Vec<(usize, usize)> = Vec::new();
        for root in 0..n {
            if state[root] != NEW {
                continue;
            }
            state[root] = OPEN;
            path.push((root, 0));
            while let Some(&mut (node, ref mut next)) = path.last_mut() {
                if let Some(&child) = kids(node).get(*next) {
                    *next += 1;
                    let child = child as usize;
                    match state[child] {
                        NEW => {
                            state[child] = OPEN;
                            path.push((child, 0));
                        }
                        OPEN => return Err("pickle holds a recursive structure".into()),
                        _ => {}
                    }
                    continue;
                }
                let mut d = 1u32;
                let mut s = self.leaves[node].saturating_add(1);
                for &child in kids(node) {
                    let child = child as usize;
                    d = d.max(depth[child] + 1);
                    s = s.saturating_add(size[child]);
                }
                if d > max_depth {
                    return Err(too_deep());
                }
                if s > max_values {
                    return Err(too_big());
                }
                (depth[node], size[node], state[node]) = (d, s, DONE);
                path.pop();
            }
        }
        let total = (0..n)
            .filter(|&node| !has_parent[node])
            .fold(0u64, |total, root| total.saturating_add(size[root]));
        if total > max_values {
            return Err(too_big());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(len: u32, filled_outside_in: bool) -> Graph {
        let mut graph = Graph::default();
        let nodes: Vec<Node> = (0..len).map(|_| graph.container().unwrap()).collect();
        let mut links: Vec<(u32, Node)> = (1..len as usize)
            .map(|i| (i as u32 - 1, nodes[i]))
            .collect();
        if !filled_outside_in {
            links.reverse();
        }
        for (parent, child) in links {
            graph.add(parent, child);
        }
        graph
    }

    #[test]
    fn depth_counts_however_late_an_inner_container_is_filled() {
        for outside_in in [true, false] {
            assert!(chain(128, outside_in).check(128, u64::MAX).is_ok());
            let err = chain(129, outside_in).check(128, u64::MAX).unwrap_err();
            assert!(err.to_string().contains("deeper than 128"), "{err}");
        }
    }

    #[test]
    fn shared_containers_count_once_per_reference_and_cycles_are_refused() {
        // L0 = [L1, L1], L1 = [L2, L2], ...: 2^k values from k containers.
        let mut graph = Graph::default();
        let nodes: Vec<Node> = (0..40).map(|_| graph.container().unwrap()).collect();
        for i in 0..39 {
            graph.add(i, nodes[i as usize + 1]);
            graph.add(i, nodes[i as usize + 1]);
        }
        let err = graph.check(128, 1 << 20).unwrap_err();
        assert!(err.to_string().contains("expands to more than"), "{err}");

        let mut cyclic = Graph::default();
        let a = cyclic.container().unwrap();
        let b = cyclic.container().unwrap();
        cyclic.add(0, b);
        cyclic.add(1, a);
        let err = cyclic.check(128, u64::MAX).unwrap_err();
        assert!(err.to_string().contains("recursive"), "{err}");
    }
}
