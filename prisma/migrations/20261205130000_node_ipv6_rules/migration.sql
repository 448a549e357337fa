-- A dual-stack node's second dump: the ip6tables-save output next to its iptables-save output. A blob
-- like the first dump (stored once by content), with its own format and parse summary; optional.

-- AlterTable
ALTER TABLE "snapshot_node" ADD COLUMN "rules6_blob_id" BIGINT,
ADD COLUMN "rules6_sha256" TEXT,
ADD COLUMN "format6" TEXT,
ADD COLUMN "summary6" JSONB;

-- AlterTable
ALTER TABLE "upload_node" ADD COLUMN "rules6_blob_id" BIGINT,
ADD COLUMN "requested_format6" TEXT,
ADD COLUMN "table_name6" TEXT;

-- AddForeignKey
ALTER TABLE "snapshot_node" ADD CONSTRAINT "snapshot_node_rules6_blob_id_fkey" FOREIGN KEY ("rules6_blob_id") REFERENCES "blob"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "upload_node" ADD CONSTRAINT "upload_node_rules6_blob_id_fkey" FOREIGN KEY ("rules6_blob_id") REFERENCES "blob"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
