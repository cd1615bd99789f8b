"""Sessions: opening, refreshing and ending them.

Password sign-in (``signin``), refresh (``refresh``), sign-out (``sign_out``), the
one session opener every way of signing in uses (``opener``), counter refresh
tokens (``refresh_tokens``), the one mechanism for every path that ends sessions
(``revocation``), trusted device tokens (``devices``), and the storage protocols
the hot flows declare (``storage``).
"""
