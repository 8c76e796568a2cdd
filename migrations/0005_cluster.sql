CREATE TABLE `shipping_marks` (
	`stream` text PRIMARY KEY NOT NULL,
	`last_id` integer NOT NULL
);
--> statement-breakpoint
ALTER TABLE `gateways` ADD `connected_peers` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `gateways` ADD `live` text;--> statement-breakpoint
ALTER TABLE `peers` ADD `served_by` text;