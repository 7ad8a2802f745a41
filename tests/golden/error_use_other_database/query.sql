-- tillflow has one catalog and database; USE of another is refused naming it
SHOW CURRENT CATALOG;
USE sales_db;
