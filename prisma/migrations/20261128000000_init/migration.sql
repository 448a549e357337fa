-- CreateTable
CREATE TABLE "cluster" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "name" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "cluster_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "snapshot" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "cluster_id" UUID NOT NULL,
    "version" INTEGER NOT NULL,
    "labels" JSONB NOT NULL DEFAULT '{}',
    "content_hash" TEXT NOT NULL,
    "manifests_raw" TEXT,
    "manifests_sha256" TEXT,
    "manifests_parsed" JSONB,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "snapshot_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "snapshot_node" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "snapshot_id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "addresses" TEXT[],
    "format" TEXT NOT NULL,
    "raw_rules" BYTEA NOT NULL,
    "sha256" TEXT NOT NULL,
    "summary" JSONB NOT NULL,

    CONSTRAINT "snapshot_node_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "snapshot_rule" (
    "id" BIGSERIAL NOT NULL,
    "node_id" UUID NOT NULL,
    "table_name" TEXT NOT NULL,
    "chain" TEXT NOT NULL,
    "position" INTEGER NOT NULL,
    "line" INTEGER NOT NULL,
    "text" TEXT NOT NULL,

    CONSTRAINT "snapshot_rule_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "cluster_name_key" ON "cluster"("name");

-- CreateIndex
CREATE INDEX "snapshot_cluster_id_version_idx" ON "snapshot"("cluster_id", "version" DESC);

-- CreateIndex
CREATE UNIQUE INDEX "snapshot_cluster_id_version_key" ON "snapshot"("cluster_id", "version");

-- CreateIndex
CREATE UNIQUE INDEX "snapshot_cluster_id_content_hash_key" ON "snapshot"("cluster_id", "content_hash");

-- CreateIndex
CREATE UNIQUE INDEX "snapshot_node_snapshot_id_name_key" ON "snapshot_node"("snapshot_id", "name");

-- CreateIndex
CREATE INDEX "snapshot_rule_node_id_table_name_chain_position_idx" ON "snapshot_rule"("node_id", "table_name", "chain", "position");

-- AddForeignKey
ALTER TABLE "snapshot" ADD CONSTRAINT "snapshot_cluster_id_fkey" FOREIGN KEY ("cluster_id") REFERENCES "cluster"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "snapshot_node" ADD CONSTRAINT "snapshot_node_snapshot_id_fkey" FOREIGN KEY ("snapshot_id") REFERENCES "snapshot"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "snapshot_rule" ADD CONSTRAINT "snapshot_rule_node_id_fkey" FOREIGN KEY ("node_id") REFERENCES "snapshot_node"("id") ON DELETE CASCADE ON UPDATE CASCADE;
