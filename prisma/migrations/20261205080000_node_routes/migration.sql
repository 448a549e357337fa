-- A node's routes (`ip route` / `ip -6 route` output), uploaded next to its rules: a blob like the
-- dump, optional. Stored-snapshot traces read the output interface from them.

-- AlterTable
ALTER TABLE "snapshot_node" ADD COLUMN "routes_blob_id" BIGINT,
ADD COLUMN "routes_sha256" TEXT;

-- AlterTable
ALTER TABLE "upload_node" ADD COLUMN "routes_blob_id" BIGINT;

-- AddForeignKey
ALTER TABLE "snapshot_node" ADD CONSTRAINT "snapshot_node_routes_blob_id_fkey" FOREIGN KEY ("routes_blob_id") REFERENCES "blob"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "upload_node" ADD CONSTRAINT "upload_node_routes_blob_id_fkey" FOREIGN KEY ("routes_blob_id") REFERENCES "blob"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
