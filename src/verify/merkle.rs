//! Merkle tree inclusion proofs as RFC 9162 §2.1.3.2 verifies them (the
//! same trees RFC 6962 defines): what Rekor v1 and v2 and the CT logs
//! prove an entry's place in a checkpoint with.

use sha2::{Digest, Sha256};

/// A SHA-256 tree hash.
pub type Hash = [u8; 32];

/// Why an inclusion proof does not hold.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    /// The index is not inside the tree.
    #[error("leaf index {index} is not below tree size {size}")]
    OutOfRange {
        /// The leaf index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// The proof has more or fewer hashes than the tree's shape needs.
    #[error("the proof has {got} hashes; a leaf {index} of a tree of {size} needs {want}")]
    WrongLength {
        /// The leaf index.
        index: u64,
        /// The tree size.
        size: u64,
        /// Hashes given.
        got: usize,
        /// Hashes needed.
        want: usize,
    },
    /// The proof leads to another root.
    #[error("the proof leads to another root than the checkpoint's")]
    RootMismatch,
}

/// The hash of a leaf: SHA-256(0x00 ‖ entry).
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(entry);
    h.finalize().into()
}

/// The hash of an interior node: SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root that `proof` leads to from leaf `index` (of hash `leaf`) in a
/// tree of `size` leaves (RFC 9162 §2.1.3.2).
pub fn root_from_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::OutOfRange { index, size });
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(wrong_length(index, size, proof.len()));
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(wrong_length(index, size, proof.len()));
    }
    Ok(r)
}

/// Checks that `proof` puts leaf `index` (of hash `leaf`) in the tree of
/// `size` leaves whose root is `root`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if root_from_inclusion(index, size, leaf, proof)? == *root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// The number of hashes an inclusion proof of leaf `index` in a tree of
/// `size` leaves has.
fn proof_length(index: u64, size: u64) -> usize {
    // Levels where the path leaves the tree's right edge, plus the rest.
    let inner = (64 - (index ^ (size - 1)).leading_zeros()) as usize;
    let border = (index >> inner).count_ones() as usize;
    inner + border
}

fn wrong_length(index: u64, size: u64, got: usize) -> ProofError {
    ProofError::WrongLength {
        index,
        size,
        got,
        want: proof_length(index, size),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MTH(D[n]) as RFC 6962 §2.1 defines it, recursively.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => Sha256::digest([]).into(),
            1 => leaves[0],
            n => {
                let k = n.next_power_of_two() / 2;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    /// PATH(m, D[n]) as RFC 6962 §2.1.1 defines it, recursively.
    fn path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        let n = leaves.len();
        if n <= 1 {
            return Vec::new();
        }
        let k = n.next_power_of_two() / 2;
        if m < k {
            let mut p = path(m, &leaves[..k]);
            p.push(mth(&leaves[k..]));
            p
        } else {
            let mut p = path(m - k, &leaves[k..]);
            p.push(mth(&leaves[..k]));
            p
        }
    }

    #[test]
    fn every_leaf_of_every_tree_up_to_33_proves_against_the_recursive_definition() {
        for n in 1..=33usize {
            let leaves: Vec<Hash> = (0..n)
                .map(|i| leaf_hash(format!("entry {i}").as_bytes()))
                .collect();
            let root = mth(&leaves);
            for m in 0..n {
                let proof = path(m, &leaves);
                assert_eq!(
                    proof.len(),
                    proof_length(m as u64, n as u64),
                    "length {m}/{n}"
                );
                verify_inclusion(m as u64, n as u64, &leaves[m], &proof, &root)
                    .unwrap_or_else(|e| panic!("leaf {m} of {n}: {e}"));
            }
        }
    }

    #[test]
    fn a_wrong_leaf_index_hash_size_or_proof_is_refused() {
        let leaves: Vec<Hash> = (0..7).map(|i| leaf_hash(&[i])).collect();
        let root = mth(&leaves);
        let proof = path(3, &leaves);
        let ok = |i, n, leaf: &Hash, p: &[Hash]| verify_inclusion(i, n, leaf, p, &root);
        assert_eq!(ok(3, 7, &leaves[3], &proof), Ok(()));
        assert_eq!(ok(3, 7, &leaves[2], &proof), Err(ProofError::RootMismatch));
        assert!(ok(2, 7, &leaves[3], &proof).is_err(), "another index");
        // The size is bound by the checkpoint that signs it with the root;
        // a size the proof's shape does not fit is refused here.
        assert!(matches!(
            ok(3, 4, &leaves[3], &proof),
            Err(ProofError::WrongLength { .. })
        ));
        assert_eq!(
            ok(7, 7, &leaves[3], &proof),
            Err(ProofError::OutOfRange { index: 7, size: 7 })
        );
        let mut flipped = proof.clone();
        flipped[1][0] ^= 1;
        assert_eq!(
            ok(3, 7, &leaves[3], &flipped),
            Err(ProofError::RootMismatch)
        );
        assert!(matches!(
            ok(3, 7, &leaves[3], &proof[..2]),
            Err(ProofError::WrongLength { .. })
        ));
        let mut longer = proof.clone();
        longer.push(root);
        assert!(matches!(
            ok(3, 7, &leaves[3], &longer),
            Err(ProofError::WrongLength { .. })
        ));
        // A single-leaf tree's root is the leaf, with an empty proof.
        assert_eq!(verify_inclusion(0, 1, &leaves[0], &[], &leaves[0]), Ok(()));
    }
}
