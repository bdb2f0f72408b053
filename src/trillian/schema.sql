-- Tables Trillian's MySQL storage (v1.7.x) reads and writes, for MySQL 8
-- and MariaDB. Every statement is idempotent, so the log server's init
-- container applies this file on every start; indexes are declared inside
-- CREATE TABLE because MySQL has no CREATE INDEX IF NOT EXISTS.
-- Column names, types and keys are Trillian's interface; do not rename.

-- One row per tree, with its settings.
CREATE TABLE IF NOT EXISTS Trees (
  TreeId                BIGINT NOT NULL,
  TreeState             ENUM('ACTIVE', 'FROZEN', 'DRAINING') NOT NULL,
  TreeType              ENUM('LOG', 'MAP', 'PREORDERED_LOG') NOT NULL,
  HashStrategy          ENUM('RFC6962_SHA256', 'TEST_MAP_HASHER', 'OBJECT_RFC6962_SHA256',
                             'CONIKS_SHA512_256', 'CONIKS_SHA256') NOT NULL,
  HashAlgorithm         ENUM('SHA256') NOT NULL,
  SignatureAlgorithm    ENUM('ECDSA', 'RSA', 'ED25519') NOT NULL,
  DisplayName           VARCHAR(20),
  Description           VARCHAR(200),
  CreateTimeMillis      BIGINT NOT NULL,
  UpdateTimeMillis      BIGINT NOT NULL,
  MaxRootDurationMillis BIGINT NOT NULL,
  PrivateKey            MEDIUMBLOB NOT NULL,
  PublicKey             MEDIUMBLOB NOT NULL,
  Deleted               BOOLEAN,
  DeleteTimeMillis      BIGINT,
  PRIMARY KEY (TreeId)
);

-- Whether the signer sequences and signs a tree, and how often.
CREATE TABLE IF NOT EXISTS TreeControl (
  TreeId                  BIGINT NOT NULL,
  SigningEnabled          BOOLEAN NOT NULL,
  SequencingEnabled       BOOLEAN NOT NULL,
  SequenceIntervalSeconds INTEGER NOT NULL,
  PRIMARY KEY (TreeId),
  FOREIGN KEY (TreeId) REFERENCES Trees (TreeId) ON DELETE CASCADE
);

-- Merkle tree nodes, stored as subtree tiles per revision.
CREATE TABLE IF NOT EXISTS Subtree (
  TreeId          BIGINT NOT NULL,
  SubtreeId       VARBINARY(255) NOT NULL,
  Nodes           MEDIUMBLOB NOT NULL,
  SubtreeRevision INTEGER NOT NULL,
  PRIMARY KEY (TreeId, SubtreeId, SubtreeRevision),
  FOREIGN KEY (TreeId) REFERENCES Trees (TreeId) ON DELETE CASCADE
);

-- Signed tree heads, one per revision.
CREATE TABLE IF NOT EXISTS TreeHead (
  TreeId            BIGINT NOT NULL,
  TreeHeadTimestamp BIGINT,
  TreeSize          BIGINT,
  RootHash          VARBINARY(255) NOT NULL,
  RootSignature     VARBINARY(1024) NOT NULL,
  TreeRevision      BIGINT,
  PRIMARY KEY (TreeId, TreeHeadTimestamp),
  UNIQUE KEY TreeHeadRevisionIdx (TreeId, TreeRevision),
  FOREIGN KEY (TreeId) REFERENCES Trees (TreeId) ON DELETE CASCADE
);

-- Leaf contents, keyed by the personality's identity hash (which is how
-- duplicates are found).
CREATE TABLE IF NOT EXISTS LeafData (
  TreeId              BIGINT NOT NULL,
  LeafIdentityHash    VARBINARY(255) NOT NULL,
  LeafValue           LONGBLOB NOT NULL,
  ExtraData           LONGBLOB,
  QueueTimestampNanos BIGINT NOT NULL,
  PRIMARY KEY (TreeId, LeafIdentityHash),
  FOREIGN KEY (TreeId) REFERENCES Trees (TreeId) ON DELETE CASCADE
);

-- Where each leaf landed in the log.
CREATE TABLE IF NOT EXISTS SequencedLeafData (
  TreeId                  BIGINT NOT NULL,
  SequenceNumber          BIGINT UNSIGNED NOT NULL,
  LeafIdentityHash        VARBINARY(255) NOT NULL,
  MerkleLeafHash          VARBINARY(255) NOT NULL,
  IntegrateTimestampNanos BIGINT NOT NULL,
  PRIMARY KEY (TreeId, SequenceNumber),
  KEY SequencedLeafMerkleIdx (TreeId, MerkleLeafHash),
  FOREIGN KEY (TreeId) REFERENCES Trees (TreeId) ON DELETE CASCADE,
  FOREIGN KEY (TreeId, LeafIdentityHash) REFERENCES LeafData (TreeId, LeafIdentityHash)
    ON DELETE CASCADE
);

-- Leaves queued for the signer to sequence. QueueID serves batched
-- deletes in builds that use them.
CREATE TABLE IF NOT EXISTS Unsequenced (
  TreeId              BIGINT NOT NULL,
  Bucket              INTEGER NOT NULL,
  LeafIdentityHash    VARBINARY(255) NOT NULL,
  MerkleLeafHash      VARBINARY(255) NOT NULL,
  QueueTimestampNanos BIGINT NOT NULL,
  QueueID             VARBINARY(32) DEFAULT NULL UNIQUE,
  PRIMARY KEY (TreeId, Bucket, QueueTimestampNanos, LeafIdentityHash)
);
