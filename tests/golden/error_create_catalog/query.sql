-- catalogs cannot be created: refused naming the catalog
CREATE CATALOG hive_cat WITH ('type' = 'hive');
