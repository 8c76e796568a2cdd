ALTER TABLE "audit_events" ADD COLUMN "origin_id" bigint;--> statement-breakpoint
ALTER TABLE "gateways" ADD COLUMN "connected_peers" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "gateways" ADD COLUMN "live" text;--> statement-breakpoint
ALTER TABLE "peers" ADD COLUMN "served_by" text;--> statement-breakpoint
CREATE UNIQUE INDEX "audit_origin" ON "audit_events" USING btree ("gid","origin_id");--> statement-breakpoint
CREATE INDEX "audit_gid" ON "audit_events" USING btree ("gid");