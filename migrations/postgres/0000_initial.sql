CREATE TABLE "admin_sessions" (
	"id" text PRIMARY KEY NOT NULL,
	"user_id" integer NOT NULL,
	"csrf_token" text NOT NULL,
	"expires_at" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "admin_users" (
	"id" integer PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "admin_users_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 CACHE 1),
	"username" text NOT NULL,
	"password_hash" text NOT NULL,
	"created_at" bigint DEFAULT ((extract(epoch from clock_timestamp()) * 1000)::bigint) NOT NULL,
	CONSTRAINT "admin_users_username_unique" UNIQUE("username")
);
--> statement-breakpoint
CREATE TABLE "api_tokens" (
	"id" integer PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "api_tokens_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 CACHE 1),
	"name" text NOT NULL,
	"token_hash" text NOT NULL,
	"created_at" bigint DEFAULT ((extract(epoch from clock_timestamp()) * 1000)::bigint) NOT NULL,
	"last_used_at" bigint,
	CONSTRAINT "api_tokens_name_unique" UNIQUE("name"),
	CONSTRAINT "api_tokens_token_hash_unique" UNIQUE("token_hash")
);
--> statement-breakpoint
CREATE TABLE "audit_events" (
	"id" integer PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "audit_events_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 CACHE 1),
	"ts" bigint DEFAULT ((extract(epoch from clock_timestamp()) * 1000)::bigint) NOT NULL,
	"actor" text NOT NULL,
	"action" text NOT NULL,
	"subject" text,
	"cid" bigint,
	"before" text,
	"after" text,
	"reason" text
);
--> statement-breakpoint
CREATE TABLE "authorizations" (
	"public_key" text NOT NULL,
	"resource_id" text NOT NULL,
	"expires_at" bigint,
	"created_at" bigint DEFAULT ((extract(epoch from clock_timestamp()) * 1000)::bigint) NOT NULL,
	CONSTRAINT "authorizations_public_key_resource_id_pk" PRIMARY KEY("public_key","resource_id")
);
--> statement-breakpoint
CREATE TABLE "connection_ids" (
	"gid" text NOT NULL,
	"cid" bigint NOT NULL,
	"public_key" text NOT NULL,
	"first_seen" bigint NOT NULL,
	"last_seen" bigint NOT NULL,
	CONSTRAINT "connection_ids_gid_cid_public_key_pk" PRIMARY KEY("gid","cid","public_key")
);
--> statement-breakpoint
CREATE TABLE "dns_proxy_assignments" (
	"domain" text PRIMARY KEY NOT NULL,
	"slot" integer NOT NULL,
	"v4" text NOT NULL,
	"v6" text NOT NULL,
	"created_at" bigint DEFAULT ((extract(epoch from clock_timestamp()) * 1000)::bigint) NOT NULL,
	CONSTRAINT "dns_proxy_assignments_slot_unique" UNIQUE("slot")
);
--> statement-breakpoint
CREATE TABLE "log_lines" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "log_lines_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"ts" bigint NOT NULL,
	"level" integer NOT NULL,
	"target" text NOT NULL,
	"cid" bigint,
	"gid" text,
	"rid" text,
	"public_key" text,
	"run" text NOT NULL,
	"seq" bigint NOT NULL,
	"line" text NOT NULL
);
--> statement-breakpoint
CREATE TABLE "peer_identities" (
	"public_key" text PRIMARY KEY NOT NULL,
	"peer_id" text NOT NULL,
	"name" text,
	"source" text NOT NULL,
	"first_seen" bigint NOT NULL,
	"last_seen" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "peers" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"public_key" text NOT NULL,
	"preshared_key" text,
	"client_private_key" text,
	"allowed_ips" text NOT NULL,
	"endpoint" text,
	"persistent_keepalive" integer DEFAULT 0 NOT NULL,
	"enabled" boolean DEFAULT true NOT NULL,
	"expires_at" bigint,
	"created_at" bigint DEFAULT ((extract(epoch from clock_timestamp()) * 1000)::bigint) NOT NULL,
	"updated_at" bigint DEFAULT ((extract(epoch from clock_timestamp()) * 1000)::bigint) NOT NULL,
	CONSTRAINT "peers_public_key_unique" UNIQUE("public_key")
);
--> statement-breakpoint
CREATE TABLE "resources" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"type" text NOT NULL,
	"address" text,
	"filters" text DEFAULT '[]' NOT NULL,
	"created_at" bigint DEFAULT ((extract(epoch from clock_timestamp()) * 1000)::bigint) NOT NULL,
	"updated_at" bigint DEFAULT ((extract(epoch from clock_timestamp()) * 1000)::bigint) NOT NULL
);
--> statement-breakpoint
CREATE TABLE "traffic_samples" (
	"id" integer PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "traffic_samples_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 CACHE 1),
	"ts" bigint NOT NULL,
	"public_key" text NOT NULL,
	"rx_bytes" bigint NOT NULL,
	"tx_bytes" bigint NOT NULL
);
--> statement-breakpoint
ALTER TABLE "admin_sessions" ADD CONSTRAINT "admin_sessions_user_id_admin_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."admin_users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "authorizations" ADD CONSTRAINT "authorizations_resource_id_resources_id_fk" FOREIGN KEY ("resource_id") REFERENCES "public"."resources"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "audit_ts" ON "audit_events" USING btree ("ts");--> statement-breakpoint
CREATE INDEX "audit_action" ON "audit_events" USING btree ("action");--> statement-breakpoint
CREATE INDEX "connection_ids_cid" ON "connection_ids" USING btree ("cid");--> statement-breakpoint
CREATE INDEX "connection_ids_key" ON "connection_ids" USING btree ("public_key");--> statement-breakpoint
CREATE INDEX "log_lines_ts" ON "log_lines" USING btree ("ts");--> statement-breakpoint
CREATE INDEX "log_lines_cid" ON "log_lines" USING btree ("cid");--> statement-breakpoint
CREATE INDEX "log_lines_key" ON "log_lines" USING btree ("public_key");--> statement-breakpoint
CREATE INDEX "peer_identities_peer_id" ON "peer_identities" USING btree ("peer_id");--> statement-breakpoint
CREATE INDEX "traffic_key_ts" ON "traffic_samples" USING btree ("public_key","ts");