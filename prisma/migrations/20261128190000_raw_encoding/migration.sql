-- AlterTable
ALTER TABLE "snapshot_node" ADD COLUMN     "raw_encoding" TEXT NOT NULL DEFAULT 'identity';

-- Dumps are stored gzip-compressed by the application: keep PostgreSQL from compressing them again.
ALTER TABLE "snapshot_node" ALTER COLUMN "raw_rules" SET STORAGE EXTERNAL;
