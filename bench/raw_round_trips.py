"""The raw-client baseline for bench/cli_start.py: the round trips `backbone probe` makes,
with nothing else: psycopg SELECT 1, redis-py PING, AdminClient metadata, and a
produce (acks=all) -> consume canary on the canary topic. Reads the outputs contract with
json only, as a hand-written script would.

    .venv/bin/python bench/raw_round_trips.py .backbone/local/outputs.json
"""
import json
import sys
import uuid

import psycopg
import redis
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

doc = json.load(open(sys.argv[1]))
public, secrets = doc["backbone"], doc.get("backbone_secrets", {})
ts, rd, kafka = public["timescale"], public["redis"], public["kafka"]

with psycopg.connect(host=ts["host"], port=ts["port"], dbname=ts["database"], user=ts["user"],
                     password=secrets["timescale"]["password"], connect_timeout=5) as conn:
    conn.execute("SELECT 1").fetchone()

client = redis.Redis(host=rd["host"], port=rd["port"], username=rd.get("username"),
                     password=secrets["redis"]["password"], socket_timeout=5,
                     **({"ssl": True, "ssl_ca_data": rd["ca_pem"]} if rd.get("tls") else {}))
client.ping()
client.close()

conf = {"bootstrap.servers": kafka["bootstrap_servers"]}
if kafka.get("security_protocol", "PLAINTEXT") != "PLAINTEXT":  # SASL_SSL as the contract says
    conf |= {"security.protocol": kafka["security_protocol"], "sasl.mechanism": kafka["sasl_mechanism"],
             "sasl.username": kafka["sasl_username"], "sasl.password": secrets["kafka"]["sasl_password"],
             "ssl.ca.pem": kafka["ca_pem"]}
AdminClient(conf).list_topics(timeout=5)
key, delivered = uuid.uuid4().hex.encode(), {}
producer = Producer(conf | {"acks": "all", "linger.ms": 0})
producer.produce("backbone.canary", key=key, value=b"canary",
                 on_delivery=lambda e, m: delivered.update(offset=None if e else m.offset()))
producer.flush(5)
if delivered.get("offset") is None:
    sys.exit("canary not acknowledged")
consumer = Consumer(conf | {"group.id": "backbone-canary", "enable.auto.commit": False})
consumer.assign([TopicPartition("backbone.canary", 0, delivered["offset"])])
while True:
    msg = consumer.poll(5)
    if msg is None:
        sys.exit("canary not consumed")
    if not msg.error() and msg.key() == key:
        break
consumer.close()
