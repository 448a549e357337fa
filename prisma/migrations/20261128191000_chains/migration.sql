-- DropForeignKey
ALTER TABLE "snapshot_rule" DROP CONSTRAINT "snapshot_rule_node_id_fkey";

-- DropTable
DROP TABLE "snapshot_rule";

-- CreateTable
CREATE TABLE "snapshot_chain" (
    "id" BIGSERIAL NOT NULL,
    "node_id" UUID NOT NULL,
    "table_name" TEXT NOT NULL,
    "chain" TEXT NOT NULL,
    "policy" TEXT,
    "declared_line" INTEGER NOT NULL,
    "rule_count" INTEGER NOT NULL,
    "lines" INTEGER[],
    "rules" TEXT NOT NULL,

    CONSTRAINT "snapshot_chain_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "snapshot_chain_node_id_table_name_chain_idx" ON "snapshot_chain"("node_id", "table_name", "chain");

-- AddForeignKey
ALTER TABLE "snapshot_chain" ADD CONSTRAINT "snapshot_chain_node_id_fkey" FOREIGN KEY ("node_id") REFERENCES "snapshot_node"("id") ON DELETE CASCADE ON UPDATE CASCADE;
