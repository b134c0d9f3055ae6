OK_FORMAT = True

test = {   'name': 'q3',
    'points': 3,
    'suites': [   {   'cases': [   {   'code': '>>> from demucs_course.grading_guard import own_work\n'
                                               '>>> x = torch.randn(3, 8, 20)\n'
                                               '>>> with own_work():\n'
                                               '...     m = BottleneckLSTM(8)\n'
                                               '...     y = m(x)\n'
                                               ">>> assert y.shape == (3, 8, 20), f'expected shape (3, 8, 20), got {tuple(y.shape)}'\n"
                                               '>>> _ = m.load_state_dict(BLSTM(8).state_dict())\n',
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
