-- Content-addressed storage: node dumps and manifests are blobs, cut into content-defined chunks
-- stored once (see README, "Storage"). Snapshots and uploads in progress refer to blobs.

-- CreateTable
CREATE TABLE "chunk" (
    "id" BIGSERIAL NOT NULL,
    "sha256" BYTEA NOT NULL,
    "bytes" INTEGER NOT NULL,
    "encoding" SMALLINT NOT NULL,
    "data" BYTEA NOT NULL,

    CONSTRAINT "chunk_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "blob" (
    "id" BIGSERIAL NOT NULL,
    "sha256" BYTEA NOT NULL,
    "bytes" BIGINT NOT NULL,
    "chunks" BIGINT[] NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "blob_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "blob_parse" (
    "blob_id" BIGINT NOT NULL,
    "requested_format" TEXT NOT NULL,
    "table_name" TEXT NOT NULL,
    "format" TEXT NOT NULL,
    "summary" JSONB NOT NULL,

    CONSTRAINT "blob_parse_pkey" PRIMARY KEY ("blob_id","requested_format","table_name")
);

-- CreateTable
CREATE TABLE "upload" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "cluster" TEXT NOT NULL,
    "manifests_blob_id" BIGINT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "expires_at" TIMESTAMPTZ(3) NOT NULL,
    "committed_snapshot_id" UUID,
    "committed_created" BOOLEAN,

    CONSTRAINT "upload_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "upload_node" (
    "upload_id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "addresses" TEXT[],
    "requested_format" TEXT NOT NULL,
    "table_name" TEXT NOT NULL,
    "blob_id" BIGINT NOT NULL,

    CONSTRAINT "upload_node_pkey" PRIMARY KEY ("upload_id","name")
);

-- CreateTable
CREATE TABLE "snapshot_reupload" (
    "id" BIGSERIAL NOT NULL,
    "snapshot_id" UUID NOT NULL,
    "labels" JSONB NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "snapshot_reupload_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "chunk_sha256_key" ON "chunk"("sha256");

-- CreateIndex
CREATE UNIQUE INDEX "blob_sha256_key" ON "blob"("sha256");

-- CreateIndex
CREATE INDEX "upload_expires_at_idx" ON "upload"("expires_at");

-- CreateIndex
CREATE INDEX "snapshot_reupload_snapshot_id_idx" ON "snapshot_reupload"("snapshot_id");

-- Chunks are compressed by the application; PostgreSQL keeps them in the row when they fit.
ALTER TABLE "chunk" ALTER COLUMN "data" SET STORAGE MAIN;

-- AlterTable
ALTER TABLE "snapshot" ADD COLUMN "manifests_blob_id" BIGINT;
ALTER TABLE "snapshot_node" ADD COLUMN "blob_id" BIGINT;

-- Existing dumps and manifests become one-chunk blobs (encoding 2 = gzip, 0 = as is), keeping
-- their bytes exactly; their sha256 is the one recorded at upload.
INSERT INTO "chunk" ("sha256", "bytes", "encoding", "data")
SELECT DISTINCT ON (n."sha256") decode(n."sha256", 'hex'), COALESCE((n."summary"->>'bytes')::INTEGER, 0),
       CASE n."raw_encoding" WHEN 'gzip' THEN 2 ELSE 0 END, n."raw_rules"
FROM "snapshot_node" n
ON CONFLICT ("sha256") DO NOTHING;
INSERT INTO "chunk" ("sha256", "bytes", "encoding", "data")
SELECT DISTINCT ON (s."manifests_sha256") decode(s."manifests_sha256", 'hex'), octet_length(s."manifests_raw"), 0,
       convert_to(s."manifests_raw", 'UTF8')
FROM "snapshot" s WHERE s."manifests_raw" IS NOT NULL
ON CONFLICT ("sha256") DO NOTHING;
INSERT INTO "blob" ("sha256", "bytes", "chunks")
SELECT c."sha256", c."bytes", ARRAY[c."id"] FROM "chunk" c;
UPDATE "snapshot_node" n SET "blob_id" = b."id" FROM "blob" b WHERE b."sha256" = decode(n."sha256", 'hex');
UPDATE "snapshot" s SET "manifests_blob_id" = b."id" FROM "blob" b WHERE b."sha256" = decode(s."manifests_sha256", 'hex');

-- The parsed chains were written and never read; the raw columns now live in blobs.
DROP TABLE "snapshot_chain";
ALTER TABLE "snapshot_node" DROP COLUMN "raw_rules", DROP COLUMN "raw_encoding";
ALTER TABLE "snapshot_node" ALTER COLUMN "blob_id" SET NOT NULL;
ALTER TABLE "snapshot" DROP COLUMN "manifests_raw", DROP COLUMN "manifests_parsed";

-- A cluster may return to an earlier state: that is a new version with the same content hash.
DROP INDEX "snapshot_cluster_id_content_hash_key";

-- AddForeignKey
ALTER TABLE "blob_parse" ADD CONSTRAINT "blob_parse_blob_id_fkey" FOREIGN KEY ("blob_id") REFERENCES "blob"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "snapshot_node" ADD CONSTRAINT "snapshot_node_blob_id_fkey" FOREIGN KEY ("blob_id") REFERENCES "blob"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "snapshot" ADD CONSTRAINT "snapshot_manifests_blob_id_fkey" FOREIGN KEY ("manifests_blob_id") REFERENCES "blob"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "upload" ADD CONSTRAINT "upload_manifests_blob_id_fkey" FOREIGN KEY ("manifests_blob_id") REFERENCES "blob"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "upload" ADD CONSTRAINT "upload_committed_snapshot_id_fkey" FOREIGN KEY ("committed_snapshot_id") REFERENCES "snapshot"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "upload_node" ADD CONSTRAINT "upload_node_upload_id_fkey" FOREIGN KEY ("upload_id") REFERENCES "upload"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "upload_node" ADD CONSTRAINT "upload_node_blob_id_fkey" FOREIGN KEY ("blob_id") REFERENCES "blob"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "snapshot_reupload" ADD CONSTRAINT "snapshot_reupload_snapshot_id_fkey" FOREIGN KEY ("snapshot_id") REFERENCES "snapshot"("id") ON DELETE CASCADE ON UPDATE CASCADE;
