// Removes the temporary data directory the config created for the server under test.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

export default async function globalTeardown() {
  const dir = process.env.HANZO_E2E_DATA_DIR;
  if (dir && path.basename(dir).startsWith("hanzo-live-e2e-") && dir.startsWith(os.tmpdir())) {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
