"""The bad-input corpus (issue 13): every broken input a careless upstream job could produce, each
a clear ``Error:`` or warning naming the problem, with nothing left behind."""
