// Loaded only by `prisma dev` (@prisma/dev imports it when it starts its local streams server).
// The real package needs Node 22; svcpath supports Node 20.19 and does not use `prisma dev`.
export async function startLocalDurableStreamsServer() {
  throw new Error('prisma dev is not available in svcpath: @prisma/streams-local is replaced by an empty package (see package.json overrides and the README, Install)');
}
