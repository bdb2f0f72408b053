//! Names of the objects a stack owns: `<stack>-<part>`, so stacks never
//! collide in a namespace.

/// A transparency log backed by a Trillian tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Log {
    /// Rekor's log.
    Rekor,
    /// The certificate transparency log.
    Ctlog,
}

impl Log {
    /// The short name used in object names.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rekor => "rekor",
            Self::Ctlog => "ctlog",
        }
    }
}

/// The ConfigMap that holds a log's tree ID (key `treeID`).
pub fn log_config(stack: &str, log: Log) -> String {
    format!("{stack}-{}-config", log.as_str())
}

/// The ConfigMap key holding a tree ID.
pub const TREE_ID_KEY: &str = "treeID";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_stack() {
        assert_eq!(log_config("demo", Log::Rekor), "demo-rekor-config");
        assert_eq!(log_config("demo", Log::Ctlog), "demo-ctlog-config");
    }
}
