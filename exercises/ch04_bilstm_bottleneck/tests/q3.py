OK_FORMAT = True

test = {   'name': 'q3',
    'points': 3,
    'suites': [   {   'cases': [   {   'code': '>>> m = BottleneckLSTM(8)\n'
                                               '>>> x = torch.randn(3, 8, 20)\n'
                                               ">>> assert m(x).shape == (3, 8, 20), f'expected shape (3, 8, 20), got {tuple(m(x).shape)}'\n"
                                               '>>> _ = m.load_state_dict(BLSTM(8).state_dict())\n',
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
