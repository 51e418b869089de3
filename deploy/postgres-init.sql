-- One database and one login per service: no service can read another's tables.
CREATE USER orgs PASSWORD 'orgs';         CREATE DATABASE orgs OWNER orgs;
CREATE USER members PASSWORD 'members';   CREATE DATABASE members OWNER members;
CREATE USER credits PASSWORD 'credits';   CREATE DATABASE credits OWNER credits;
CREATE USER billing PASSWORD 'billing';   CREATE DATABASE billing OWNER billing;
CREATE USER audit PASSWORD 'audit';       CREATE DATABASE audit OWNER audit;
CREATE USER webhooks PASSWORD 'webhooks'; CREATE DATABASE webhooks OWNER webhooks;
