OK_FORMAT = True

test = {   'name': 'q1',
    'points': 2,
    'suites': [   {   'cases': [   {   'code': '>>> e, s = (torch.zeros(2, 4, 2, 10), torch.full((2, 4, 2, 10), 2.0))\n'
                                               ">>> assert torch.isclose(separation_loss(e, s, 'l1'), torch.tensor(2.0)), 'l1 is the mean of |estimate - source|'\n"
                                               ">>> assert torch.isclose(separation_loss(e, s, 'l2'), torch.tensor(4.0)), 'l2 is the mean of (estimate - source)^2'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
