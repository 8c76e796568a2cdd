// `bunx drizzle-kit generate --config drizzle.postgres.config.ts` writes PostgreSQL migrations for
// src/store/schema-pg.ts into migrations/postgres/ (the SQLite ones stay in migrations/).
import { defineConfig } from "drizzle-kit";

export default defineConfig({
  dialect: "postgresql",
  schema: "./src/store/schema-pg.ts",
  out: "./migrations/postgres",
});
