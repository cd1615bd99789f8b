"""Delivery: the messages authsvc sends people and how they enter the outbox
(``messages``), and the loops that send the outbox through its channels
(``outbox``; the SMTP and webhook adapters are ``authsvc.runtime.senders``).
"""
