//! Access rights bits as stored in `_acl[].rights` (create 1, read 2, update 4, delete 8, invoke 16;
//! full control is exactly 65535).

use serde::{Deserialize, Serialize};

/// A set of rights bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Rights(pub u32);

impl Rights {
    /// No rights.
    pub const NONE: Rights = Rights(0);
    /// Create documents.
    pub const CREATE: Rights = Rights(1);
    /// Read documents.
    pub const READ: Rights = Rights(2);
    /// Update documents.
    pub const UPDATE: Rights = Rights(4);
    /// Delete documents.
    pub const DELETE: Rights = Rights(8);
    /// Invoke (send to a queue, run a workitem).
    pub const INVOKE: Rights = Rights(16);
    /// Full control: all 16 bits.
    pub const FULL_CONTROL: Rights = Rights(65535);

    /// True if every bit of `other` is set in `self`.
    pub fn contains(self, other: Rights) -> bool {
        self.0 & other.0 == other.0
    }

    /// True if any bit of `other` is set in `self`.
    pub fn intersects(self, other: Rights) -> bool {
        self.0 & other.0 != 0
    }
}

impl std::ops::BitOr for Rights {
    type Output = Rights;
    fn bitor(self, rhs: Rights) -> Rights {
        Rights(self.0 | rhs.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_tests() {
        assert!(Rights::FULL_CONTROL.contains(Rights::READ | Rights::DELETE));
        assert!(!Rights(65527).contains(Rights::DELETE), "full control minus delete");
        assert!(Rights(6).intersects(Rights::UPDATE));
        assert!(!Rights::READ.intersects(Rights::UPDATE));
    }
}
