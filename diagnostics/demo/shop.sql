-- The demo target database: a small shop, laid out the way Prisma lays out a schema (quoted
-- PascalCase tables, camelCase columns, a _prisma_migrations table), as in the playbook's
-- examples. Loaded by `manage.py quell_demo`; safe to run again (nothing is duplicated, rows
-- changed by later experiments are left as they are).

DO $$
BEGIN
    CREATE TYPE "Role" AS ENUM ('USER', 'MODERATOR', 'ADMIN');
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

DO $$
BEGIN
    CREATE TYPE "OrderStatus" AS ENUM ('PENDING', 'PAID', 'SHIPPED', 'CANCELLED', 'REFUNDED');
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

CREATE TABLE IF NOT EXISTS "User" (
    "id"        SERIAL PRIMARY KEY,
    "email"     TEXT NOT NULL,
    "name"      TEXT,
    "role"      "Role" NOT NULL DEFAULT 'USER',
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE UNIQUE INDEX IF NOT EXISTS "User_email_key" ON "User" ("email");

CREATE TABLE IF NOT EXISTS "Profile" (
    "id"      SERIAL PRIMARY KEY,
    "bio"     TEXT,
    "avatar"  TEXT,
    "userId"  INTEGER NOT NULL
        REFERENCES "User" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE UNIQUE INDEX IF NOT EXISTS "Profile_userId_key" ON "Profile" ("userId");

CREATE TABLE IF NOT EXISTS "Post" (
    "id"        SERIAL PRIMARY KEY,
    "title"     TEXT NOT NULL,
    "content"   TEXT,
    "published" BOOLEAN NOT NULL DEFAULT false,
    "authorId"  INTEGER NOT NULL
        REFERENCES "User" ("id") ON DELETE RESTRICT ON UPDATE CASCADE,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS "Post_authorId_idx" ON "Post" ("authorId");

CREATE TABLE IF NOT EXISTS "Product" (
    "id"         SERIAL PRIMARY KEY,
    "sku"        TEXT NOT NULL,
    "name"       TEXT NOT NULL,
    "priceCents" INTEGER NOT NULL CHECK ("priceCents" >= 0),
    "stock"      INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS "Product_sku_key" ON "Product" ("sku");

CREATE TABLE IF NOT EXISTS "Order" (
    "id"         SERIAL PRIMARY KEY,
    "userId"     INTEGER NOT NULL
        REFERENCES "User" ("id") ON DELETE RESTRICT ON UPDATE CASCADE,
    "status"     "OrderStatus" NOT NULL DEFAULT 'PENDING',
    "totalCents" INTEGER NOT NULL DEFAULT 0,
    "createdAt"  TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS "Order_userId_idx" ON "Order" ("userId");

CREATE TABLE IF NOT EXISTS "OrderItem" (
    "id"         SERIAL PRIMARY KEY,
    "orderId"    INTEGER NOT NULL
        REFERENCES "Order" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    "productId"  INTEGER NOT NULL
        REFERENCES "Product" ("id") ON DELETE RESTRICT ON UPDATE CASCADE,
    "quantity"   INTEGER NOT NULL CHECK ("quantity" > 0),
    "priceCents" INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS "OrderItem_orderId_idx" ON "OrderItem" ("orderId");

CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                  VARCHAR(36) PRIMARY KEY,
    "checksum"            VARCHAR(64) NOT NULL,
    "finished_at"         TIMESTAMPTZ,
    "migration_name"      VARCHAR(255) NOT NULL,
    "logs"                TEXT,
    "rolled_back_at"      TIMESTAMPTZ,
    "started_at"          TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count" INTEGER NOT NULL DEFAULT 0
);

-- Data: deterministic, so a second run finds every row already there.

-- 200 users: 3 admins, 12 moderators, the rest plain users.
INSERT INTO "User" ("id", "email", "name", "role", "createdAt", "updatedAt")
SELECT g,
       format('user%s@shop.example', g),
       (ARRAY['Ada', 'Grace', 'Linus', 'Barbara', 'Ken', 'Edsger', 'Frances', 'Donald'])[1 + g % 8]
           || ' ' || (ARRAY['Lovelace', 'Hopper', 'Torvalds', 'Liskov', 'Thompson', 'Dijkstra',
                            'Allen', 'Knuth', 'Ritchie', 'Hamilton'])[1 + g % 10],
       CASE WHEN g <= 3 THEN 'ADMIN'::"Role" WHEN g <= 15 THEN 'MODERATOR'::"Role"
            ELSE 'USER'::"Role" END,
       TIMESTAMP '2025-01-01' + g * INTERVAL '37 hours',
       TIMESTAMP '2025-01-01' + g * INTERVAL '37 hours'
FROM generate_series(1, 200) AS g
ON CONFLICT DO NOTHING;

-- A profile for 190 of them (ten users never filled theirs in).
INSERT INTO "Profile" ("id", "bio", "avatar", "userId")
SELECT g,
       format('Shopper since %s. Likes %s.', 2025 + g % 2,
              (ARRAY['tea', 'maps', 'keyboards', 'gardening', 'chess'])[1 + g % 5]),
       CASE WHEN g % 3 = 0 THEN format('https://avatars.shop.example/%s.png', g) END,
       g
FROM generate_series(1, 190) AS g
ON CONFLICT DO NOTHING;

-- 400 posts by the first 120 users, most of them published.
INSERT INTO "Post" ("id", "title", "content", "published", "authorId", "createdAt", "updatedAt")
SELECT g,
       format('%s #%s', (ARRAY['Unboxing', 'Review', 'Question', 'Tip', 'Wishlist'])[1 + g % 5], g),
       CASE WHEN g % 10 = 0 THEN NULL
            ELSE repeat(format('Post %s has something to say about the shop. ', g), 1 + g % 4) END,
       g % 10 <> 0,
       1 + (g * 7) % 120,
       TIMESTAMP '2025-03-01' + g * INTERVAL '11 hours',
       TIMESTAMP '2025-03-01' + g * INTERVAL '11 hours'
FROM generate_series(1, 400) AS g
ON CONFLICT DO NOTHING;

-- 40 products.
INSERT INTO "Product" ("id", "sku", "name", "priceCents", "stock")
SELECT g,
       format('SKU-%s', lpad(g::text, 4, '0')),
       (ARRAY['Mug', 'Notebook', 'Sticker pack', 'Hoodie', 'Cap', 'Poster', 'Tote bag',
              'Keyboard'])[1 + g % 8] || ' ' || g,
       500 + (g * 733) % 9500,
       (g * 13) % 90
FROM generate_series(1, 40) AS g
ON CONFLICT DO NOTHING;

-- 300 orders from 150 customers, each with one to three items.
INSERT INTO "Order" ("id", "userId", "status", "createdAt")
SELECT g,
       16 + (g * 11) % 150,
       (ARRAY['PAID', 'SHIPPED', 'SHIPPED', 'PENDING', 'CANCELLED', 'REFUNDED']::"OrderStatus"[])
           [1 + g % 6],
       TIMESTAMP '2025-06-01' + g * INTERVAL '5 hours'
FROM generate_series(1, 300) AS g
ON CONFLICT DO NOTHING;

INSERT INTO "OrderItem" ("id", "orderId", "productId", "quantity", "priceCents")
SELECT (o - 1) * 3 + i,
       o,
       1 + (o * 3 + i * 17) % 40,
       1 + (o + i) % 3,
       500 + ((1 + (o * 3 + i * 17) % 40) * 733) % 9500
FROM generate_series(1, 300) AS o, generate_series(1, 3) AS i
WHERE i <= 1 + o % 3
ON CONFLICT DO NOTHING;

-- Order totals follow their items (only for orders still at 0: later edits are kept).
UPDATE "Order" o
SET "totalCents" = t.total
FROM (SELECT "orderId", sum("quantity" * "priceCents") AS total
      FROM "OrderItem" GROUP BY "orderId") AS t
WHERE o."id" = t."orderId" AND o."totalCents" = 0;

INSERT INTO "_prisma_migrations" ("id", "checksum", "finished_at", "migration_name",
                                  "started_at", "applied_steps_count")
VALUES
    ('2f6c1b0e-0d8a-4c47-9d51-2c0a8e1f0001', md5('20250101000000_init'),
     TIMESTAMPTZ '2025-01-01 09:00:02+00', '20250101000000_init',
     TIMESTAMPTZ '2025-01-01 09:00:00+00', 1),
    ('2f6c1b0e-0d8a-4c47-9d51-2c0a8e1f0002', md5('20250301000000_add_posts'),
     TIMESTAMPTZ '2025-03-01 09:00:01+00', '20250301000000_add_posts',
     TIMESTAMPTZ '2025-03-01 09:00:00+00', 1),
    ('2f6c1b0e-0d8a-4c47-9d51-2c0a8e1f0003', md5('20250601000000_add_orders'),
     TIMESTAMPTZ '2025-06-01 09:00:03+00', '20250601000000_add_orders',
     TIMESTAMPTZ '2025-06-01 09:00:00+00', 1)
ON CONFLICT DO NOTHING;

-- Explicit ids were inserted: move each sequence past them so the application can insert.
SELECT setval(pg_get_serial_sequence('"User"', 'id'),
              (SELECT coalesce(max(id), 0) + 1 FROM "User"), false);
SELECT setval(pg_get_serial_sequence('"Profile"', 'id'),
              (SELECT coalesce(max(id), 0) + 1 FROM "Profile"), false);
SELECT setval(pg_get_serial_sequence('"Post"', 'id'),
              (SELECT coalesce(max(id), 0) + 1 FROM "Post"), false);
SELECT setval(pg_get_serial_sequence('"Product"', 'id'),
              (SELECT coalesce(max(id), 0) + 1 FROM "Product"), false);
SELECT setval(pg_get_serial_sequence('"Order"', 'id'),
              (SELECT coalesce(max(id), 0) + 1 FROM "Order"), false);
SELECT setval(pg_get_serial_sequence('"OrderItem"', 'id'),
              (SELECT coalesce(max(id), 0) + 1 FROM "OrderItem"), false);

-- Slow-query diagnostics read pg_stat_statements; create it where the server offers it.
-- (It reports only when the server preloads it: shared_preload_libraries.)
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'pg_stat_statements not available: %', SQLERRM;
END $$;

ANALYZE;
